/*
 * edgec_run - run a bundled model on .npy inputs and write .npy outputs.
 *
 *   edgec_run [--repeat N] MODEL.so OUT_DIR INPUT0.npy [INPUT1.npy ...]
 *
 * Inputs are given in the model's input order (see model/model.io); output i
 * is written to OUT_DIR/output_<i>.npy, and one line per output is printed.
 * With --repeat N the model runs N more times and the median latency is
 * printed. Exit status: 0 ok, 1 bad input or model, 2 usage.
 *
 * It is also the example of the C API in edgec_model.h: everything it does
 * with the model goes through that header.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edgec_model.h"

#define MAX_DIMS 16

static const struct {
  const char *descr; /* numpy dtype.str without the byte-order character */
  edgec_dtype dtype;
} NPY_TYPES[] = {
    {"f4", EDGEC_FLOAT32}, {"f2", EDGEC_FLOAT16}, {"f8", EDGEC_FLOAT64},
    {"i1", EDGEC_INT8},    {"i2", EDGEC_INT16},   {"i4", EDGEC_INT32},
    {"i8", EDGEC_INT64},   {"u1", EDGEC_UINT8},   {"u2", EDGEC_UINT16},
    {"u4", EDGEC_UINT32},  {"u8", EDGEC_UINT64},  {"b1", EDGEC_BOOL},
};
#define N_NPY_TYPES (sizeof NPY_TYPES / sizeof NPY_TYPES[0])

typedef struct {
  edgec_dtype dtype;
  int ndim;
  int64_t shape[MAX_DIMS];
  size_t nbytes;
  void *data;
} npy_array;

static int fail(const char *fmt, const char *a, const char *b) {
  fprintf(stderr, "edgec_run: ");
  fprintf(stderr, fmt, a, b);
  fputc('\n', stderr);
  return 1;
}

static int little_endian(void) {
  const uint16_t one = 1;
  return *(const uint8_t *)&one == 1;
}

/* Reads a C-ordered, little-endian .npy file (format 1.0, 2.0 or 3.0). */
static int npy_read(const char *path, npy_array *out) {
  unsigned char magic[8];
  char *header = NULL;
  FILE *f = fopen(path, "rb");
  memset(out, 0, sizeof *out);
  if (f == NULL) return fail("%s: %s", path, strerror(errno));
  if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "\x93NUMPY", 6) != 0) {
    fclose(f);
    return fail("%s: not a .npy file%s", path, "");
  }
  uint32_t hlen = 0;
  unsigned char len[4] = {0};
  size_t lbytes = magic[6] == 1 ? 2 : 4;
  if (fread(len, 1, lbytes, f) != lbytes) goto truncated;
  hlen = len[0] | (len[1] << 8) | (lbytes == 4 ? ((uint32_t)len[2] << 16) | ((uint32_t)len[3] << 24) : 0);
  if (hlen > 1 << 20) goto bad_header;
  header = calloc(1, hlen + 1);
  if (header == NULL || fread(header, 1, hlen, f) != hlen) goto truncated;

  const char *descr = strstr(header, "'descr':");
  const char *order = strstr(header, "'fortran_order':");
  const char *shape = strstr(header, "'shape':");
  if (!descr || !order || !shape) goto bad_header;
  descr = strchr(descr + 8, '\'');
  if (descr == NULL) goto bad_header;
  ++descr;
  if (descr[0] == '>' || (descr[0] == '=' && !little_endian())) {
    free(header);
    fclose(f);
    return fail("%s: big-endian data; save it little-endian%s", path, "");
  }
  if (descr[0] == '<' || descr[0] == '|' || descr[0] == '=') ++descr;
  size_t t = 0;
  for (; t < N_NPY_TYPES; ++t)
    if (strncmp(descr, NPY_TYPES[t].descr, 2) == 0 && descr[2] == '\'') break;
  if (t == N_NPY_TYPES) {
    free(header);
    fclose(f);
    return fail("%s: unsupported dtype in .npy header%s", path, "");
  }
  out->dtype = NPY_TYPES[t].dtype;
  if (strncmp(order + 16, " True", 5) == 0) {
    free(header);
    fclose(f);
    return fail("%s: Fortran-ordered array; save it with np.ascontiguousarray%s", path, "");
  }
  const char *p = strchr(shape, '(');
  if (p == NULL) goto bad_header;
  ++p;
  size_t elements = 1;
  while (*p && *p != ')') {
    char *end;
    while (*p == ' ' || *p == ',') ++p;
    if (*p == ')') break;
    long long d = strtoll(p, &end, 10);
    if (end == p || d < 0 || out->ndim >= MAX_DIMS) goto bad_header;
    out->shape[out->ndim++] = d;
    elements *= (size_t)d;
    p = end;
  }
  out->nbytes = elements * edgec_dtype_size(out->dtype);
  out->data = malloc(out->nbytes ? out->nbytes : 1);
  if (out->data == NULL) {
    free(header);
    fclose(f);
    return fail("%s: out of memory%s", path, "");
  }
  if (fread(out->data, 1, out->nbytes, f) != out->nbytes) goto truncated;
  free(header);
  fclose(f);
  return 0;
truncated:
  free(header);
  free(out->data);
  out->data = NULL;
  fclose(f);
  return fail("%s: truncated .npy file%s", path, "");
bad_header:
  free(header);
  fclose(f);
  return fail("%s: unreadable .npy header%s", path, "");
}

static const char *npy_descr(edgec_dtype dtype) {
  for (size_t t = 0; t < N_NPY_TYPES; ++t)
    if (NPY_TYPES[t].dtype == dtype) return NPY_TYPES[t].descr;
  return NULL;
}

static int npy_write(const char *path, const edgec_tensor_info *info, const void *data) {
  char header[512], dims[320] = "";
  size_t used = 0;
  for (int i = 0; i < info->ndim; ++i)
    used += (size_t)snprintf(dims + used, sizeof dims - used, "%lld%s",
                             (long long)info->shape[i], info->ndim == 1 ? "," : (i + 1 < info->ndim ? ", " : ""));
  const char *d = npy_descr(info->dtype);
  int n = snprintf(header, sizeof header, "{'descr': '%c%s', 'fortran_order': False, 'shape': (%s), }",
                   d[0] == 'b' || d[1] == '1' ? '|' : '<', d, dims);
  int total = 10 + n + 1;
  int pad = (64 - total % 64) % 64;
  FILE *f = fopen(path, "wb");
  if (f == NULL) return fail("%s: %s", path, strerror(errno));
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
  pre[8] = (unsigned char)((n + pad + 1) & 0xff);
  pre[9] = (unsigned char)((n + pad + 1) >> 8);
  int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(header, 1, (size_t)n, f) == (size_t)n;
  for (int i = 0; ok && i < pad; ++i) ok = fputc(' ', f) != EOF;
  ok = ok && fputc('\n', f) != EOF && fwrite(data, 1, info->nbytes, f) == info->nbytes;
  ok = (fclose(f) == 0) && ok;
  return ok ? 0 : fail("%s: write failed: %s", path, strerror(errno));
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int model_error(edgec_model *model, const char *what) {
  return fail("%s: %s", what, edgec_model_last_error(model));
}

int main(int argc, char **argv) {
  int repeat = 0, arg = 1;
  if (arg + 1 < argc && strcmp(argv[arg], "--repeat") == 0) {
    repeat = atoi(argv[arg + 1]);
    arg += 2;
  }
  if (argc - arg < 2) {
    fprintf(stderr, "usage: edgec_run [--repeat N] MODEL.so OUT_DIR INPUT0.npy [INPUT1.npy ...]\n");
    return 2;
  }
  const char *library = argv[arg], *out_dir = argv[arg + 1];
  char **input_files = argv + arg + 2;
  int n_files = argc - arg - 2;

  edgec_model *model = NULL;
  if (edgec_model_create(library, NULL, &model) != EDGEC_OK)
    return fail("%s%s", edgec_model_last_error(NULL), "");
  int status = 1;
  if (n_files != edgec_model_num_inputs(model)) {
    char want[32];
    snprintf(want, sizeof want, "%d", edgec_model_num_inputs(model));
    fail("%s: the model takes %s input file(s) (see model.io)", library, want);
    goto done;
  }
  for (int i = 0; i < n_files; ++i) {
    npy_array a;
    if (npy_read(input_files[i], &a) != 0) goto done;
    edgec_status st = edgec_model_set_input(model, i, a.data, a.dtype, a.ndim, a.shape);
    free(a.data);
    if (st != EDGEC_OK) {
      model_error(model, input_files[i]);
      goto done;
    }
  }
  if (edgec_model_run(model) != EDGEC_OK) {
    model_error(model, library);
    goto done;
  }
  for (int i = 0; i < edgec_model_num_outputs(model); ++i) {
    edgec_tensor_info info;
    char path[4096];
    edgec_model_output_info(model, i, &info);
    void *buf = malloc(info.nbytes ? info.nbytes : 1);
    if (buf == NULL) {
      fail("%s: out of memory%s", library, "");
      goto done;
    }
    snprintf(path, sizeof path, "%s/output_%d.npy", out_dir, i);
    int bad = edgec_model_get_output(model, i, buf, info.nbytes) != EDGEC_OK
                  ? model_error(model, library)
                  : npy_write(path, &info, buf);
    free(buf);
    if (bad) goto done;
    printf("output %d %s %s[", i, info.name, edgec_dtype_name(info.dtype));
    for (int d = 0; d < info.ndim; ++d) printf("%s%lld", d ? "," : "", (long long)info.shape[d]);
    printf("] -> %s\n", path);
  }
  if (repeat > 0) {
    double *ms = malloc(sizeof(double) * (size_t)repeat);
    if (ms == NULL) goto done;
    for (int r = 0; r < repeat; ++r) {
      double t0 = now_ms();
      if (edgec_model_run(model) != EDGEC_OK) {
        free(ms);
        model_error(model, library);
        goto done;
      }
      ms[r] = now_ms() - t0;
    }
    qsort(ms, (size_t)repeat, sizeof(double), cmp_double);
    printf("latency median %.3f ms, min %.3f ms over %d runs\n", ms[repeat / 2], ms[0], repeat);
    free(ms);
  }
  status = 0;
done:
  edgec_model_destroy(model);
  return status;
}
