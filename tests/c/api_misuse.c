/*
 * Calls the bundle's C API the wrong way and checks each call fails with the
 * right status and a message, never a crash. Built against a bundle of a model
 * with one float32 input [1,3,32,32] and one output [1,10] (tiny_cnn).
 *
 *   api_misuse MODEL.so NOT_A_LIBRARY FOREIGN_ARCH.so
 *
 * Prints "ok <check>" per passing check, "FAIL <check>: ..." otherwise; the exit
 * status is the number of failures.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgec_model.h"

static int failures = 0;

static void expect(const char *check, edgec_status got, edgec_status want, const char *msg,
                   const char *needle) {
  if (got == want && msg != NULL && (needle == NULL || strstr(msg, needle) != NULL)) {
    printf("ok %s: %s\n", check, msg);
  } else {
    printf("FAIL %s: status %d (%s), wanted %d; message '%s', wanted it to contain '%s'\n",
           check, got, edgec_status_name(got), want, msg ? msg : "(null)", needle ? needle : "");
    ++failures;
  }
}

/* Makes the call before reading the message: C leaves argument order unspecified. */
#define EXPECT(check, call, want, model, needle)                            \
  do {                                                                      \
    edgec_status status_ = (call);                                          \
    expect(check, status_, want, edgec_model_last_error(model), needle);    \
  } while (0)

int main(int argc, char **argv) {
  if (argc != 4) return 100;
  edgec_model *m = NULL;
  EXPECT("missing library", edgec_model_create("/nonexistent/model.so", NULL, &m),
         EDGEC_ERR_FILE, NULL, "no such model library");
  EXPECT("not a library", edgec_model_create(argv[2], NULL, &m), EDGEC_ERR_FILE,
         NULL, "no ELF header");
  EXPECT("foreign architecture", edgec_model_create(argv[3], NULL, &m), EDGEC_ERR_FILE,
         NULL, "built for");
  EXPECT("missing io table", edgec_model_create(argv[1], "/nonexistent/model.io", &m),
         EDGEC_ERR_FILE, NULL, "model.io");
  EXPECT("NULL out", edgec_model_create(argv[1], NULL, NULL), EDGEC_ERR_ARGUMENT,
         NULL, "NULL");
  if (m != NULL) {
    printf("FAIL failed create left a handle\n");
    return 1 + failures;
  }

  edgec_status st = edgec_model_create(argv[1], NULL, &m);
  if (st != EDGEC_OK) {
    printf("FAIL create: %s\n", edgec_model_last_error(NULL));
    return 1 + failures;
  }
  edgec_tensor_info in, out;
  EXPECT("input info", edgec_model_input_info(m, 0, &in), EDGEC_OK, m, NULL);
  EXPECT("output info", edgec_model_output_info(m, 0, &out), EDGEC_OK, m, NULL);
  if (edgec_model_num_inputs(m) != 1 || in.ndim != 4 || in.shape[2] != 32 ||
      in.dtype != EDGEC_FLOAT32 || in.nbytes != 3 * 32 * 32 * 4 || out.nbytes != 40 ||
      edgec_model_input_index(m, in.name) != 0 || edgec_model_input_index(m, "nope") != -1) {
    printf("FAIL tensor table: %s ndim %d nbytes %zu\n", in.name, in.ndim, in.nbytes);
    ++failures;
  }
  EXPECT("input index out of range", edgec_model_input_info(m, 5, &in), EDGEC_ERR_ARGUMENT,
         m, "out of range");
  edgec_model_input_info(m, 0, &in);

  float *x = calloc(in.nbytes, 1), y[10];
  int64_t wrong[4] = {1, 3, 16, 16};
  EXPECT("run before inputs", edgec_model_run(m), EDGEC_ERR_STATE, m,
         "is not set");
  EXPECT("output before run", edgec_model_get_output(m, 0, y, sizeof y), EDGEC_ERR_STATE,
         m, "edgec_model_run");
  EXPECT("wrong shape", edgec_model_set_input(m, 0, x, EDGEC_FLOAT32, 4, wrong), EDGEC_ERR_SHAPE,
         m, "[1,3,32,32], got [1,3,16,16]");
  EXPECT("wrong rank", edgec_model_set_input(m, 0, x, EDGEC_FLOAT32, 2, in.shape), EDGEC_ERR_SHAPE,
         m, "got [1,3]");
  EXPECT("wrong dtype", edgec_model_set_input(m, 0, x, EDGEC_INT64, 4, in.shape), EDGEC_ERR_DTYPE,
         m, "is float32, got int64");
  EXPECT("unknown dtype code", edgec_model_set_input(m, 0, x, (edgec_dtype)99, 4, in.shape),
         EDGEC_ERR_DTYPE, m, "unknown dtype");
  EXPECT("NULL data", edgec_model_set_input(m, 0, NULL, EDGEC_FLOAT32, 4, in.shape),
         EDGEC_ERR_ARGUMENT, m, "NULL");
  EXPECT("unknown name", edgec_model_set_input_by_name(m, "nope", x, EDGEC_FLOAT32, 4, in.shape),
         EDGEC_ERR_ARGUMENT, m, "no input named 'nope'");
  EXPECT("set by name", edgec_model_set_input_by_name(m, in.name, x, EDGEC_FLOAT32, 4, in.shape),
         EDGEC_OK, m, NULL);
  EXPECT("run", edgec_model_run(m), EDGEC_OK, m, NULL);
  EXPECT("small buffer", edgec_model_get_output(m, 0, y, 8), EDGEC_ERR_BUFFER,
         m, "needs 40 bytes");
  EXPECT("output index", edgec_model_get_output(m, 3, y, sizeof y), EDGEC_ERR_ARGUMENT,
         m, "out of range");
  EXPECT("get output", edgec_model_get_output(m, 0, y, sizeof y), EDGEC_OK, m, NULL);
  float sum = 0;
  for (int i = 0; i < 10; ++i) sum += y[i];
  if (sum < 0.999f || sum > 1.001f) {  /* tiny_cnn ends in Softmax */
    printf("FAIL softmax output sums to %f\n", sum);
    ++failures;
  } else {
    printf("ok output sums to 1\n");
  }
  EXPECT("NULL model", edgec_model_run(NULL), EDGEC_ERR_ARGUMENT, NULL,
         "NULL");
  edgec_model_destroy(m);
  edgec_model_destroy(NULL);
  free(x);
  return failures;
}
