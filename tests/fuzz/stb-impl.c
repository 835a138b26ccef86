/*
 * stb-impl.c: stb_image and stb_image_write compiled from Debian's headers
 * (the same 2.27 code libstb holds) for the fuzz build only, so that the
 * BMP and TGA decoders dsd_image_load still hands to stb are instrumented
 * (coverage, ASan, UBSan). The normal build links libstb instead.
 */
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image.h>
#include <stb_image_write.h>
