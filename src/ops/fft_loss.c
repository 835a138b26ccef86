/* fft_loss.c: placeholder (being implemented). */
#include "internal.h"

void dsd_fft_cache_release(dsd_context *ctx)
{
    (void)ctx;
}
