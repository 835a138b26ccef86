/* depthwise.cl: placeholder until this op family is implemented. */
