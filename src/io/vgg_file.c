/*
 * vgg_file.c: reads the frozen VGG-19's weights (dsd_vgg_load) from a
 * safetensors file with torchvision's key names, features.<i>.weight and
 * .bias (scripts/convert_vgg19.py writes one from torchvision's checkpoint;
 * doc/vgg.md). The network itself, its parameter table and the layer names
 * are src/model/vgg.c's; this file only matches the table against the file.
 *
 * It does not write VGG files (the project never trains VGG) and does not
 * parse safetensors itself (src/io/safetensors.c does). The whole file is
 * validated and converted into a host copy of the arena before one upload,
 * so a failure leaves the device weights unchanged. Tests: tests/test-vgg.c.
 */
#include "internal.h"

#include "io/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The conv's place in the network, for messages: "conv3_2 weight". */
static void describe_param(const dsd_param_info *e, char *buf, size_t size)
{
    int index = -1;
    char what[16] = "";
    if (sscanf(e->name, "features.%d.%15s", &index, what) != 2)
        index = -1;
    snprintf(buf, size, "VGG-19 %s %s", dsd_vgg_layer_name(index), what);
}

dsd_status dsd_vgg_load(dsd_context *ctx, dsd_vgg *vgg, const char *path)
{
    dsd_error *err = dsd_ctx_err(ctx);
    if (!vgg || !vgg->params.values.buf)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "vgg_load: VGG not initialized");
    if (!path || !*path)
        return DSD_FAIL(err, DSD_ERR_INVALID_ARGUMENT, "vgg_load: no VGG-19 weights file given "
                        "(dsdeblur cannot download them; see doc/vgg.md)");
    const dsd_params *p = &vgg->params;
    dsd_safetensors *st = NULL;
    dsd_status s = dsd_safetensors_open(path, &st, err);
    if (s != DSD_OK) {
        /* keep the reader's message, add where the file comes from */
        size_t len = strlen(err->message);
        snprintf(err->message + len, sizeof err->message - len, " (VGG-19 weights: make them "
                 "with scripts/convert_vgg19.py, see doc/vgg.md)");
        return s;
    }
    float *host = malloc(p->count * sizeof *host);
    if (!host) {
        dsd_safetensors_close(st);
        return DSD_FAIL(err, DSD_ERR_OUT_OF_MEMORY, "vgg_load: %zu host floats", p->count);
    }
    for (size_t i = 0; i < p->n && s == DSD_OK; i++) {
        const dsd_param_info *e = &p->info[i];
        char what[64];
        describe_param(e, what, sizeof what);
        const dsd_st_tensor *t = dsd_safetensors_find(st, e->name);
        if (!t) {
            s = DSD_FAIL(err, DSD_ERR_FORMAT, "%s: no tensor '%s' (%s); a VGG-19 weights file "
                         "holds torchvision's features.<i>.weight/.bias up to index %d at least "
                         "(scripts/convert_vgg19.py, doc/vgg.md)", path, e->name, what,
                         vgg->cfg.last_layer);
            break;
        }
        int64_t shape[4];
        int same = t->ndim == e->ndim;
        for (int d = 0; d < e->ndim; d++) {
            shape[d] = e->shape[d];
            same = same && t->shape[d] == shape[d];
        }
        if (!same) {
            char want[64], have[96];
            int n = 0;
            for (int d = 0; d < e->ndim; d++)
                n += snprintf(want + n, sizeof want - (size_t)n, "%s%d", d ? "," : "",
                              e->shape[d]);
            n = 0;
            for (int d = 0; d < t->ndim && n < (int)sizeof have - 24; d++)
                n += snprintf(have + n, sizeof have - (size_t)n, "%s%lld", d ? "," : "",
                              (long long)t->shape[d]);
            if (t->ndim == 0)
                have[0] = '\0';
            s = DSD_FAIL(err, DSD_ERR_FORMAT, "%s: tensor '%s' (%s) has shape [%s], expected "
                         "[%s]: not torchvision's VGG-19 (see doc/vgg.md)", path, e->name, what,
                         have, want);
            break;
        }
        s = dsd_safetensors_read_f32(st, e->name, e->ndim, shape, host + e->offset, err);
    }
    dsd_safetensors_close(st);
    if (s == DSD_OK)
        s = dsd_tensor_upload(ctx, &vgg->params.values, host, p->count);
    free(host);
    if (s == DSD_OK)
        vgg->has_weights = 1;
    return s;
}
