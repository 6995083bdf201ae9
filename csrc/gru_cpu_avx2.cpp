// AVX2 + FMA variant of the kernel.
#include "gru_cpu_common.h"
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC target("avx2,fma")
#define BSPF_VBYTES 32
#define BSPF_NS avx2
#include "gru_cpu_kernel.h"
#include "gru_cpu_onehot_conv.h"
#endif
