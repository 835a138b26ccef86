/* ref/loss.c: double-precision references (placeholder). */
#include "loss.h"
typedef int dsd_ref_loss_placeholder;
