/* cblas_sgemm for MLX's CPU backend, computed by oneDNN's sgemm.
 *
 * libmlx.so imports cblas_sgemm as an undefined dynamic symbol; this library, loaded with
 * RTLD_GLOBAL before MLX (srgan_mlx/blas.py), provides it, so MLX's float32 matrix products
 * run on oneDNN's JIT kernels instead of the reference BLAS bundled with the mlx-cpu wheel.
 * It depends on libdnnl alone (no MLX), so it works with any MLX build. */

#include <oneapi/dnnl/dnnl.h>

enum { ROW_MAJOR = 101, COL_MAJOR = 102, NO_TRANS = 111 };

void cblas_sgemm(int layout, int trans_a, int trans_b, int m, int n, int k, float alpha, const float* a,
                 int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  char ta = trans_a == NO_TRANS ? 'N' : 'T';
  char tb = trans_b == NO_TRANS ? 'N' : 'T';
  if (layout == ROW_MAJOR) {
    dnnl_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  } else {
    /* column-major C = op(A) op(B) is row-major C^T = op(B)^T op(A)^T */
    dnnl_sgemm(tb, ta, n, m, k, alpha, b, ldb, a, lda, beta, c, ldc);
  }
}
