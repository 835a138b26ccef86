/*
 * norm.c: placeholder until this op family is implemented (see dsdeblur_ops.h).
 */
#include "internal.h"
