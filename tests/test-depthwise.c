/* test-depthwise.c: placeholder until the op is implemented; exits 77 (SKIP). */
int main(void) { return 77; }
