// AVX-512 variant of the kernel (chosen at run time only where the CPU has AVX-512F/BW/DQ/VL).
#include "gru_cpu_common.h"
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512")
#define BSPF_VBYTES 64
#define BSPF_NS avx512
#include "gru_cpu_kernel.h"
#include "gru_cpu_onehot_conv.h"
#endif
