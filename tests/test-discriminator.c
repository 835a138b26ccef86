/* test-discriminator.c: placeholder; exits 77 (SKIP). */
int main(void) { return 77; }
