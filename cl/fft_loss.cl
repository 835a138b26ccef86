/* fft_loss.cl: placeholder. */
