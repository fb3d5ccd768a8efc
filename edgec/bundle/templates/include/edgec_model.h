/*
 * edgec_model.h - run an edgec-compiled model from C or C++.
 *
 * A plain C API over the TVM runtime: no C++ types cross it, every call
 * returns a status (or a value that says "none"), and every failure leaves a
 * one-line message behind. A model handle is not thread-safe: use one per
 * thread, or guard it. One run uses every online CPU, unless the environment
 * variable TVM_NUM_THREADS (read when the first model runs) says otherwise.
 *
 *   edgec_model *m = NULL;
 *   if (edgec_model_create("model/model.so", NULL, &m) != EDGEC_OK) {
 *     fprintf(stderr, "%s\n", edgec_model_last_error(NULL));
 *     return 1;
 *   }
 *   edgec_model_set_input(m, 0, pixels, EDGEC_FLOAT32, 4, shape);
 *   edgec_model_run(m);
 *   edgec_model_get_output(m, 0, scores, sizeof scores);
 *   edgec_model_destroy(m);
 */
#ifndef EDGEC_MODEL_H_
#define EDGEC_MODEL_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EDGEC_API_VERSION 1

typedef enum {
  EDGEC_OK = 0,
  EDGEC_ERR_ARGUMENT = 1, /* NULL pointer, index out of range, unknown name */
  EDGEC_ERR_SHAPE = 2,    /* input shape differs from the compiled shape */
  EDGEC_ERR_DTYPE = 3,    /* input dtype differs from the compiled dtype */
  EDGEC_ERR_BUFFER = 4,   /* output buffer smaller than the output */
  EDGEC_ERR_FILE = 5,     /* model library or its .io table missing or unreadable */
  EDGEC_ERR_STATE = 6,    /* run before every input is set, output before a run */
  EDGEC_ERR_RUNTIME = 7,  /* the TVM runtime failed (message says why) */
  EDGEC_ERR_MEMORY = 8    /* out of memory */
} edgec_status;

/* Element types, as named in the artifact's manifest (numpy names). */
typedef enum {
  EDGEC_FLOAT32 = 0,
  EDGEC_FLOAT16 = 1,
  EDGEC_FLOAT64 = 2,
  EDGEC_INT8 = 3,
  EDGEC_INT16 = 4,
  EDGEC_INT32 = 5,
  EDGEC_INT64 = 6,
  EDGEC_UINT8 = 7,
  EDGEC_UINT16 = 8,
  EDGEC_UINT32 = 9,
  EDGEC_UINT64 = 10,
  EDGEC_BOOL = 11
} edgec_dtype;

/* What one input or output looks like. Pointers stay valid until destroy. */
typedef struct {
  const char *name;
  edgec_dtype dtype;
  int ndim;
  const int64_t *shape;
  size_t nbytes; /* elements x element size */
} edgec_tensor_info;

typedef struct edgec_model edgec_model;

/* Loads the model library (model.so) and its tensor table. io_path NULL means
 * the library path with ".so" replaced by ".io". On failure *out is NULL and
 * edgec_model_last_error(NULL) says why. */
edgec_status edgec_model_create(const char *library_path, const char *io_path,
                                edgec_model **out);
void edgec_model_destroy(edgec_model *model);

int edgec_model_num_inputs(const edgec_model *model);
int edgec_model_num_outputs(const edgec_model *model);
edgec_status edgec_model_input_info(const edgec_model *model, int index,
                                    edgec_tensor_info *info);
edgec_status edgec_model_output_info(const edgec_model *model, int index,
                                     edgec_tensor_info *info);
/* Index of the named input/output, or -1. */
int edgec_model_input_index(const edgec_model *model, const char *name);
int edgec_model_output_index(const edgec_model *model, const char *name);

/* Copies the caller's data in; dtype, ndim and shape must match exactly. */
edgec_status edgec_model_set_input(edgec_model *model, int index, const void *data,
                                   edgec_dtype dtype, int ndim, const int64_t *shape);
edgec_status edgec_model_set_input_by_name(edgec_model *model, const char *name,
                                           const void *data, edgec_dtype dtype, int ndim,
                                           const int64_t *shape);
/* Runs once on the inputs set last. Inputs stay set between runs. */
edgec_status edgec_model_run(edgec_model *model);
/* Copies output `index` of the last run into buffer (buffer_bytes >= nbytes). */
edgec_status edgec_model_get_output(edgec_model *model, int index, void *buffer,
                                    size_t buffer_bytes);

/* The message of the last failed call on `model`; with NULL, of the last
 * failed call on this thread (including edgec_model_create). "" if none. */
const char *edgec_model_last_error(const edgec_model *model);
const char *edgec_status_name(edgec_status status);
const char *edgec_dtype_name(edgec_dtype dtype);
size_t edgec_dtype_size(edgec_dtype dtype);
/* The dtype called `name` ("float32", ...); returns -1 if unknown. */
int edgec_dtype_from_name(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* EDGEC_MODEL_H_ */
