/* safetensors.c: placeholder (being implemented). */
#include "safetensors.h"
typedef int dsd_safetensors_placeholder;
