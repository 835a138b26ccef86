/* adam.cl: placeholder. */
