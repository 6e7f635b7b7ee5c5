/* worker.c - the worker context's shared zlib streams (see worker.h): one
 * no-context-takeover compressor per window size and one decompressor per
 * worker, made on first use and freed by the server with the worker. */
#include "transport/worker.h"
#include "codec/pmdeflate.h"
#include "core/common.h"

z_stream *hr_worker_deflater(hr_worker *w, int window_bits)
{
    if (window_bits < 9 || window_bits > 15) window_bits = 15;
    if (!w->deflaters[window_bits]) {
        z_stream *zs = hr_calloc(1, sizeof(*zs));
        if (hr_pmd_deflater_init(zs, (int)w->opts->ws_deflate_level, window_bits, (int)w->opts->ws_deflate_mem_level)) {
            hr_free(zs);
            return NULL;
        }
        w->deflaters[window_bits] = zs;
    }
    return w->deflaters[window_bits];
}

z_stream *hr_worker_inflater(hr_worker *w)
{
    if (!w->inflater) {
        z_stream *zs = hr_calloc(1, sizeof(*zs));
        if (hr_pmd_inflater_init(zs, 15)) {
            hr_free(zs);
            return NULL;
        }
        w->inflater = zs;
    }
    return w->inflater;
}
