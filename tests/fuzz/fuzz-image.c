/*
 * fuzz-image.c: libFuzzer harness for dsd_image_load (src/io/image.c) and,
 * through it, libpng, libjpeg-turbo and stb_image's BMP and TGA decoders.
 * Each input is an image file. The contract checked beyond "no sanitizer
 * report": a load either succeeds with a whole 8-bit RGB image within the
 * size limits (every byte is read, so a short buffer shows up under ASan), or
 * fails with DSD_ERR_FORMAT / DSD_ERR_OUT_OF_MEMORY, a message naming the
 * file, and the image left empty. Build and run: scripts/fuzz (make fuzz).
 */
#include "dsdeblur.h"
#include "fuzz-input.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_input_path(data, size);
    dsd_image img = {0};
    dsd_error err;
    memset(&err, 0, sizeof err);
    dsd_status st = dsd_image_load(path, &img, &err);
    if (st == DSD_OK) {
        FUZZ_REQUIRE(img.data && img.channels == 3 && img.width >= 1 && img.height >= 1 &&
                         img.width <= DSD_IMAGE_MAX_SIDE && img.height <= DSD_IMAGE_MAX_SIDE &&
                         (int64_t)img.width * img.height <= DSD_IMAGE_MAX_PIXELS,
                     "loaded %d x %d x %d", img.width, img.height, img.channels);
        unsigned sum = 0;
        size_t n = dsd_image_numel(&img);
        for (size_t i = 0; i < n; i++)
            sum += img.data[i];
        /* keep the reads */
        __asm__ volatile("" : : "r"(sum));
    } else {
        FUZZ_REQUIRE(st == DSD_ERR_FORMAT || st == DSD_ERR_OUT_OF_MEMORY, "status %s: %s",
                     dsd_status_name(st), err.message);
        FUZZ_REQUIRE(!strncmp(err.message, path, strlen(path)), "message lacks the path: %s",
                     err.message);
        FUZZ_REQUIRE(!img.data && img.width == 0, "image not empty after a failure");
    }
    dsd_image_free(&img);
    return 0;
}
