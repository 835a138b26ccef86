/* generator.c: placeholder (being implemented). */
#include "internal.h"
