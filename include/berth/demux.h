/* Incremental demultiplexer for Docker's multiplexed exec/attach stream (Tty=false).
 *
 * Each frame: 8-byte header [stream, 0, 0, 0, len(u32 big-endian)] then `len` payload bytes. Input may arrive in any
 * chunking (a header split across reads, zero-length frames, payloads spread over many reads): the demultiplexer keeps
 * its state between calls and hands payload pieces to the sink as they arrive, without buffering payloads. */
#ifndef BERTH_DEMUX_H
#define BERTH_DEMUX_H

#include <stddef.h>
#include <stdint.h>

#include "berth/error.h"

enum { BERTH_STREAM_STDOUT = 1, BERTH_STREAM_STDERR = 2 };

/* Receives a payload piece of one stream (BERTH_STREAM_STDOUT or _STDERR). Return <0 to abort. */
typedef int (*berth_stream_sink)(void *userdata, int stream, const char *data, size_t len);

typedef struct berth_demux {
  uint8_t hdr[8];
  size_t hdr_len;     /* header bytes collected so far */
  uint64_t remaining; /* payload bytes left in the current frame */
  int stream;         /* stream of the current frame */
  uint64_t max_frame; /* hard cap on a frame's declared length */
  uint64_t frames;    /* frames seen, for diagnostics */
} berth_demux;

#define BERTH_DEMUX_DEFAULT_MAX_FRAME (64u * 1024u * 1024u)

void berth_demux_init(berth_demux *d, uint64_t max_frame);
/* Feeds bytes; calls sink for every payload piece. Fails (BERTH_EDOCKER) on an unknown stream type, a non-zero
 * padding byte or a frame over the cap; fails with the sink's code if it aborts. */
int berth_demux_feed(berth_demux *d, const char *data, size_t len, berth_stream_sink sink, void *userdata,
                     berth_error **err);
/* At end of input: fails (BERTH_EDOCKER) if the stream stopped inside a frame. */
int berth_demux_finish(const berth_demux *d, berth_error **err);

#endif
