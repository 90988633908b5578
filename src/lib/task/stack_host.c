/* The checks of a stack that look at this host rather than at the record: its project directory and subdir on
 * the file system, and the pull policies the admin config allows. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "berth/cleanup.h"
#include "berth/config.h"
#include "berth/credhelper.h"
#include "berth/parse.h"
#include "berth/allowlist.h"
#include "berth/stack_host.h"
#include <cjson/cJSON.h>

int
berth_stack_resolve_project_dir(const char *dir, char **out, berth_error **err)
{
  char *abs = realpath(dir, NULL);
  if (abs == NULL) {
    if (errno == ENOENT)
      return berth_error_set(err, BERTH_EINVAL, "project dir `%s` does not exist", dir);
    return berth_error_set_errno(err, BERTH_EINVAL, errno, "project dir `%s` cannot be resolved", dir);
  }
  struct stat sb;
  int rc = 0;
  if (stat(abs, &sb) < 0)
    rc = berth_error_set_errno(err, BERTH_EINVAL, errno, "project dir `%s`", dir);
  else if (!S_ISDIR(sb.st_mode))
    rc = berth_error_set(err, BERTH_EINVAL, "project dir `%s` is not a directory", dir);
  else {
    DIR *d = opendir(abs);
    if (d == NULL || access(abs, R_OK | X_OK) < 0)
      rc = berth_error_set_errno(err, BERTH_EINVAL, errno, "project dir `%s` is not readable", dir);
    if (d)
      closedir(d);
  }
  if (rc < 0) {
    free(abs);
    return rc;
  }
  *out = abs;
  return 0;
}

int
berth_stack_check_host(berth_stack *s, const char *home, bool project_dir_changed, bool subdir_changed,
                       bool network_changed, berth_error **err)
{
  int rc = 0;
  if (project_dir_changed && s->project_dir) {
    char *abs = NULL;
    if ((rc = berth_stack_resolve_project_dir(s->project_dir, &abs, err)) < 0)
      return rc;
    free(s->project_dir);
    s->project_dir = abs;
  }
  if (subdir_changed && s->subdir) {
    char *norm = NULL;
    if ((rc = berth_parse_relative_path("subdir", s->subdir, &norm, err)) < 0)
      return rc;
    free(s->subdir);
    s->subdir = norm;
  }
  if (s->subdir && (subdir_changed || project_dir_changed)) {
    if (s->project_dir == NULL)
      return berth_error_set(err, BERTH_EINVAL, "--subdir needs a project dir (--project-dir DIR)");
    cleanup_free char *path = NULL;
    struct stat sb;
    if (asprintf(&path, "%s/%s", s->project_dir, s->subdir) < 0)
      return berth_error_set(err, BERTH_EINTERNAL, "out of memory");
    if (stat(path, &sb) < 0 || !S_ISDIR(sb.st_mode))
      return berth_error_set(err, BERTH_EINVAL, "subdir `%s` is not a directory under %s", s->subdir, s->project_dir);
  }
  if (home == NULL)
    return 0;
  /* the admin's config may restrict the pull policies stacks can choose */
  berth_config cfg;
  if ((rc = berth_config_load(home, &cfg, err)) < 0)
    return rc;
  if (s->pull_policy)
    rc = berth_config_check_pull_policy(&cfg, s->pull_policy, err);
  if (rc == 0 && s->network && network_changed)
    rc = berth_config_check_network(&cfg, s->network, err);
  /* the credential helpers it names exist here and can be run */
  for (size_t i = 0; rc == 0 && i < s->credentials.n; i++)
    rc = berth_cred_helper_check(&cfg, s->credentials.v[i], err);
  berth_config_clear(&cfg);
  return rc;
}

char *
berth_stack_image_warning(berth_store *st, const berth_stack *s)
{
  berth_image_decision dec;
  berth_error *err = NULL;
  char *w = NULL;
  if (berth_allowlist_check(st, s->image, &dec, &err) < 0) {
    berth_error_free(err);
    return NULL;
  }
  if (!dec.allowed
      && asprintf(&w, "%s; tasks of stack %s will be refused until an admin allows it",
                  dec.reason ? dec.reason : "the allowlist refuses this image", s->name)
             < 0)
    w = NULL;
  berth_image_decision_clear(&dec);
  return w;
}

cJSON *
berth_stack_json_warned(berth_store *st, const berth_stack *s)
{
  cJSON *j = berth_stack_to_json(s);
  char *w = j ? berth_stack_image_warning(st, s) : NULL;
  if (w != NULL) {
    cJSON *arr = cJSON_AddArrayToObject(j, "warnings");
    cJSON_AddItemToArray(arr, cJSON_CreateString(w));
    free(w);
  }
  return j;
}
