/* pixel_shuffle.cl: placeholder until this op family is implemented. */
