/* Docker multiplexed-stream demultiplexer: a small state machine fed in arbitrary chunks. */
#include <string.h>

#include "berth/demux.h"

void
berth_demux_init(berth_demux *d, uint64_t max_frame)
{
  memset(d, 0, sizeof *d);
  d->max_frame = max_frame ? max_frame : BERTH_DEMUX_DEFAULT_MAX_FRAME;
}

static int
demux_parse_header(berth_demux *d, berth_error **err)
{
  uint8_t type = d->hdr[0];
  if (type == 0) /* stdin echoed back: treated as stdout, as docker's stdcopy does */
    type = BERTH_STREAM_STDOUT;
  if (type == 3)
    return berth_error_set(err, BERTH_EDOCKER, "exec stream carried a daemon error frame");
  if (type != BERTH_STREAM_STDOUT && type != BERTH_STREAM_STDERR)
    return berth_error_set(err, BERTH_EDOCKER, "exec stream has an unknown stream type %u in frame %llu",
                           (unsigned) d->hdr[0], (unsigned long long) d->frames + 1);
  if (d->hdr[1] || d->hdr[2] || d->hdr[3])
    return berth_error_set(err, BERTH_EDOCKER, "exec stream frame %llu has a malformed header",
                           (unsigned long long) d->frames + 1);
  uint64_t len = ((uint64_t) d->hdr[4] << 24) | ((uint64_t) d->hdr[5] << 16) | ((uint64_t) d->hdr[6] << 8) | d->hdr[7];
  if (len > d->max_frame)
    return berth_error_set(err, BERTH_EDOCKER, "exec stream frame of %llu bytes exceeds the cap of %llu bytes",
                           (unsigned long long) len, (unsigned long long) d->max_frame);
  d->stream = type;
  d->remaining = len;
  d->hdr_len = 0;
  d->frames++;
  return 0;
}

int
berth_demux_feed(berth_demux *d, const char *data, size_t len, berth_stream_sink sink, void *userdata,
                 berth_error **err)
{
  while (len > 0) {
    if (d->remaining == 0) {
      size_t take = sizeof d->hdr - d->hdr_len;
      if (take > len)
        take = len;
      memcpy(d->hdr + d->hdr_len, data, take);
      d->hdr_len += take;
      data += take;
      len -= take;
      if (d->hdr_len < sizeof d->hdr)
        return 0;
      int rc = demux_parse_header(d, err);
      if (rc < 0)
        return rc;
      continue; /* zero-length frames fall through to the next header */
    }
    size_t take = d->remaining < len ? (size_t) d->remaining : len;
    int rc = sink(userdata, d->stream, data, take);
    if (rc < 0)
      return berth_error_set(err, rc, "exec output consumer stopped");
    d->remaining -= take;
    data += take;
    len -= take;
  }
  return 0;
}

int
berth_demux_finish(const berth_demux *d, berth_error **err)
{
  if (d->hdr_len != 0 || d->remaining != 0)
    return berth_error_set(err, BERTH_EDOCKER, "exec stream ended inside a frame (%llu payload bytes missing)",
                           (unsigned long long) d->remaining);
  return 0;
}
