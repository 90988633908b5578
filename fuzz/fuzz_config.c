/* libFuzzer target: the admin config parser (config.json). Any input either parses or fails with one line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *text = malloc(size + 1);
  if (text == NULL)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  berth_config c;
  berth_error *err = NULL;
  if (berth_config_parse(text, "fuzz.json", &c, &err) == 0) {
    if (c.max_parallel_tasks < 1)
      abort();
    berth_config_clear(&c);
  } else if (err == NULL || err->msg == NULL || strchr(err->msg, '\n') != NULL) {
    abort();
  }
  berth_error_free(err);
  free(text);
  return 0;
}
