/* safetensors.h: placeholder (being implemented). */
#ifndef DSDEBLUR_SAFETENSORS_H
#define DSDEBLUR_SAFETENSORS_H
#endif
