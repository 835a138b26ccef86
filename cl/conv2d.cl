/* conv2d.cl: placeholder until this op family is implemented. */
