// Baseline (SSE2 on x86-64, or whatever the target's default is) variant of the kernel.
#include "gru_cpu_common.h"
#define BSPF_VBYTES 16
#define BSPF_NS base
#include "gru_cpu_kernel.h"
#include "gru_cpu_onehot_conv.h"
