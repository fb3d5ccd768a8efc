// edgec_model.cc - the C API of edgec_model.h over the TVM runtime (tvm_ffi).
//
// The model library is a Relax executable: loading it gives a module whose
// vm_load_executable makes a VM, which is initialised for the CPU with the
// pooled allocator and called through its "main" function. No exception
// crosses the C boundary: each one becomes a status and a message.

#include "edgec_model.h"

#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace ffi = tvm::ffi;

namespace {

constexpr int kCPU = 1;             // kDLCPU
constexpr int kPooledAllocator = 2;  // tvm::runtime::memory::AllocatorType::kPooled
constexpr size_t kAlignment = 64;   // TVM's kernels may use aligned vector loads

struct DtypeEntry {
  const char *name;
  DLDataType dl;
  size_t size;
};

const DtypeEntry kDtypes[] = {
    {"float32", {kDLFloat, 32, 1}, 4}, {"float16", {kDLFloat, 16, 1}, 2},
    {"float64", {kDLFloat, 64, 1}, 8}, {"int8", {kDLInt, 8, 1}, 1},
    {"int16", {kDLInt, 16, 1}, 2},     {"int32", {kDLInt, 32, 1}, 4},
    {"int64", {kDLInt, 64, 1}, 8},     {"uint8", {kDLUInt, 8, 1}, 1},
    {"uint16", {kDLUInt, 16, 1}, 2},   {"uint32", {kDLUInt, 32, 1}, 4},
    {"uint64", {kDLUInt, 64, 1}, 8},   {"bool", {kDLBool, 8, 1}, 1},
};
constexpr int kNumDtypes = sizeof(kDtypes) / sizeof(kDtypes[0]);

thread_local std::string g_thread_error;

struct AlignedAlloc {
  void AllocData(DLTensor *t) {
    size_t n = ffi::GetDataSize(*t);
    size_t rounded = (n + kAlignment - 1) / kAlignment * kAlignment;
    t->data = std::aligned_alloc(kAlignment, rounded ? rounded : kAlignment);
    if (t->data == nullptr) throw std::bad_alloc();
  }
  void FreeData(DLTensor *t) { std::free(t->data); }
};

struct TensorSlot {
  std::string name;
  edgec_dtype dtype;
  std::vector<int64_t> shape;
  size_t nbytes;
};

std::string ShapeString(const int64_t *shape, int ndim) {
  std::ostringstream s;
  s << "[";
  for (int i = 0; i < ndim; ++i) s << (i ? "," : "") << shape[i];
  s << "]";
  return s.str();
}

struct Failure {
  edgec_status status;
  std::string message;
};

}  // namespace

struct edgec_model {
  std::optional<ffi::Module> library;  // keeps the generated code loaded while the VM lives
  std::optional<ffi::Module> vm;
  ffi::Function main;
  std::vector<TensorSlot> inputs, outputs;
  std::vector<ffi::Tensor> input_values;
  std::vector<bool> input_set;
  std::vector<ffi::Tensor> results;
  std::string error;
};

namespace {

edgec_status Fail(const edgec_model *model, edgec_status status, const std::string &message) {
  g_thread_error = message;
  if (model) const_cast<edgec_model *>(model)->error = message;
  return status;
}

// Runs body, turning every exception into a status and message.
template <typename F>
edgec_status Guard(const edgec_model *model, F body) {
  try {
    return body();
  } catch (const Failure &f) {
    return Fail(model, f.status, f.message);
  } catch (const ffi::Error &e) {
    std::string msg = e.message();
    auto nl = msg.find('\n');
    if (nl != std::string::npos) msg.resize(nl);
    return Fail(model, EDGEC_ERR_RUNTIME, "TVM runtime: " + e.kind() + ": " + msg);
  } catch (const std::bad_alloc &) {
    return Fail(model, EDGEC_ERR_MEMORY, "out of memory");
  } catch (const std::exception &e) {
    return Fail(model, EDGEC_ERR_RUNTIME, std::string("TVM runtime: ") + e.what());
  } catch (...) {
    return Fail(model, EDGEC_ERR_RUNTIME, "TVM runtime: unknown exception");
  }
}

std::vector<std::string> Split(const std::string &text, char sep) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, sep)) parts.push_back(part);
  return parts;
}

// model.io: "input|output <TAB> name <TAB> dtype <TAB> d1,d2,..." per line.
void ReadTable(const std::string &path, edgec_model *model) {
  std::ifstream in(path);
  if (!in) throw Failure{EDGEC_ERR_FILE, path + ": cannot read the tensor table (model.io)"};
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    auto fields = Split(line, '\t');
    auto bad = [&](const std::string &why) {
      return Failure{EDGEC_ERR_FILE, path + ":" + std::to_string(lineno) + ": " + why};
    };
    if (fields.size() < 3 || fields.size() > 4) throw bad("expected kind, name, dtype, shape");
    TensorSlot slot;
    slot.name = fields[1];
    int dtype = edgec_dtype_from_name(fields[2].c_str());
    if (dtype < 0) throw bad("unknown dtype '" + fields[2] + "'");
    slot.dtype = static_cast<edgec_dtype>(dtype);
    size_t elements = 1;
    if (fields.size() == 4 && !fields[3].empty()) {
      for (const auto &d : Split(fields[3], ',')) {
        char *end = nullptr;
        long long v = std::strtoll(d.c_str(), &end, 10);
        if (d.empty() || *end != '\0' || v < 0) throw bad("bad dimension '" + d + "'");
        slot.shape.push_back(v);
        elements *= static_cast<size_t>(v);
      }
    }
    slot.nbytes = elements * kDtypes[dtype].size;
    if (fields[0] == "input") {
      model->inputs.push_back(slot);
    } else if (fields[0] == "output") {
      model->outputs.push_back(slot);
    } else {
      throw bad("kind must be input or output, not '" + fields[0] + "'");
    }
  }
  if (model->outputs.empty()) throw Failure{EDGEC_ERR_FILE, path + ": lists no outputs"};
}

#if defined(__aarch64__)
constexpr int kMachine = 183;
constexpr const char *kMachineName = "aarch64";
#elif defined(__x86_64__)
constexpr int kMachine = 62;
constexpr const char *kMachineName = "x86_64";
#else
constexpr int kMachine = -1;  // not checked
constexpr const char *kMachineName = "this CPU";
#endif

const char *MachineName(int machine) {
  switch (machine) {
    case 183: return "aarch64";
    case 62: return "x86_64";
    case 40: return "32-bit ARM";
    case 3: return "x86 (32-bit)";
    case 243: return "RISC-V";
  }
  return "another CPU";
}

// Checks the library before dlopen, whose messages do not say what is wrong.
void CheckLibrary(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Failure{EDGEC_ERR_FILE, path + ": no such model library"};
  unsigned char head[20] = {0};
  f.read(reinterpret_cast<char *>(head), sizeof head);
  if (f.gcount() < static_cast<std::streamsize>(sizeof head) ||
      std::memcmp(head, "\x7f" "ELF", 4) != 0)
    throw Failure{EDGEC_ERR_FILE, path + ": not a shared library (no ELF header); give the "
                                         "model.so of an edgec bundle"};
  int machine = head[18] | (head[19] << 8);
  if (kMachine >= 0 && machine != kMachine)
    throw Failure{EDGEC_ERR_FILE, path + ": built for " + MachineName(machine) +
                                      ", this program runs on " + kMachineName +
                                      "; compile the model for this target"};
}

// EDGEC_OK, or the status of an index outside ``slots`` (with its message recorded).
edgec_status CheckIndex(const edgec_model *model, const std::vector<TensorSlot> &slots,
                        int index, const char *kind) {
  if (index >= 0 && index < static_cast<int>(slots.size())) return EDGEC_OK;
  return Fail(model, EDGEC_ERR_ARGUMENT,
              std::string(kind) + " index " + std::to_string(index) + " out of range (" +
                  std::to_string(slots.size()) + " " + kind + "s)");
}

edgec_status Info(const edgec_model *model, const std::vector<TensorSlot> &slots, int index,
                  edgec_tensor_info *info, const char *kind) {
  if (model == nullptr || info == nullptr)
    return Fail(model, EDGEC_ERR_ARGUMENT, "model and info must not be NULL");
  if (edgec_status st = CheckIndex(model, slots, index, kind)) return st;
  const TensorSlot &s = slots[index];
  info->name = s.name.c_str();
  info->dtype = s.dtype;
  info->ndim = static_cast<int>(s.shape.size());
  info->shape = s.shape.data();
  info->nbytes = s.nbytes;
  return EDGEC_OK;
}

int IndexOf(const std::vector<TensorSlot> &slots, const char *name) {
  if (name == nullptr) return -1;
  for (size_t i = 0; i < slots.size(); ++i)
    if (slots[i].name == name) return static_cast<int>(i);
  return -1;
}

}  // namespace

extern "C" {

edgec_status edgec_model_create(const char *library_path, const char *io_path,
                                edgec_model **out) {
  if (out == nullptr) return Fail(nullptr, EDGEC_ERR_ARGUMENT, "out must not be NULL");
  *out = nullptr;
  if (library_path == nullptr) return Fail(nullptr, EDGEC_ERR_ARGUMENT, "library_path is NULL");
  // TVM's pool starts half as many workers as CPUs (it assumes two hardware
  // threads per core): one on a 2-CPU board. Use every online CPU unless the
  // app set TVM_NUM_THREADS; the pool reads it when it first starts.
  if (std::getenv("TVM_NUM_THREADS") == nullptr) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus > 0) setenv("TVM_NUM_THREADS", std::to_string(cpus).c_str(), 0);
  }
  edgec_model *model = new (std::nothrow) edgec_model();
  if (model == nullptr) return Fail(nullptr, EDGEC_ERR_MEMORY, "out of memory");
  edgec_status st = Guard(nullptr, [&]() -> edgec_status {
    std::string lib = library_path;
    std::string io;
    if (io_path != nullptr) {
      io = io_path;
    } else {
      io = lib;
      if (io.size() > 3 && io.compare(io.size() - 3, 3, ".so") == 0) io.resize(io.size() - 3);
      io += ".io";
    }
    CheckLibrary(lib);
    ReadTable(io, model);
    // dlopen searches the library path for a name without '/'; a path is meant here.
    model->library = ffi::Module::LoadFromFile(lib.find('/') == std::string::npos ? "./" + lib : lib);
    auto load = (*model->library)->GetFunction("vm_load_executable");
    if (!load.has_value())
      throw Failure{EDGEC_ERR_FILE, lib + ": not a Relax executable (no vm_load_executable)"};
    model->vm = (*load)().cast<ffi::Module>();
    auto init = (*model->vm)->GetFunction("vm_initialization");
    auto main = (*model->vm)->GetFunction("main");
    if (!init.has_value() || !main.has_value())
      throw Failure{EDGEC_ERR_FILE, lib + ": the executable has no main function"};
    (*init)(kCPU, 0, kPooledAllocator);
    model->main = *main;
    model->input_values.resize(model->inputs.size());
    model->input_set.assign(model->inputs.size(), false);
    for (size_t i = 0; i < model->inputs.size(); ++i) {
      const TensorSlot &s = model->inputs[i];
      model->input_values[i] = ffi::Tensor::FromNDAlloc(
          AlignedAlloc(), ffi::ShapeView(s.shape.data(), s.shape.size()),
          kDtypes[s.dtype].dl, DLDevice{kDLCPU, 0});
    }
    return EDGEC_OK;
  });
  if (st != EDGEC_OK) {
    delete model;
    return st;
  }
  *out = model;
  return EDGEC_OK;
}

void edgec_model_destroy(edgec_model *model) {
  if (model == nullptr) return;
  try {
    delete model;
  } catch (...) {
    // a destructor that throws during teardown has nothing left to report to
  }
}

int edgec_model_num_inputs(const edgec_model *model) {
  return model ? static_cast<int>(model->inputs.size()) : 0;
}

int edgec_model_num_outputs(const edgec_model *model) {
  return model ? static_cast<int>(model->outputs.size()) : 0;
}

edgec_status edgec_model_input_info(const edgec_model *model, int index,
                                    edgec_tensor_info *info) {
  return model ? Info(model, model->inputs, index, info, "input")
               : Fail(nullptr, EDGEC_ERR_ARGUMENT, "model is NULL");
}

edgec_status edgec_model_output_info(const edgec_model *model, int index,
                                     edgec_tensor_info *info) {
  return model ? Info(model, model->outputs, index, info, "output")
               : Fail(nullptr, EDGEC_ERR_ARGUMENT, "model is NULL");
}

int edgec_model_input_index(const edgec_model *model, const char *name) {
  return model ? IndexOf(model->inputs, name) : -1;
}

int edgec_model_output_index(const edgec_model *model, const char *name) {
  return model ? IndexOf(model->outputs, name) : -1;
}

edgec_status edgec_model_set_input(edgec_model *model, int index, const void *data,
                                   edgec_dtype dtype, int ndim, const int64_t *shape) {
  if (model == nullptr) return Fail(nullptr, EDGEC_ERR_ARGUMENT, "model is NULL");
  if (edgec_status st = CheckIndex(model, model->inputs, index, "input")) return st;
  const TensorSlot &s = model->inputs[index];
  if (data == nullptr) return Fail(model, EDGEC_ERR_ARGUMENT, "input '" + s.name + "': data is NULL");
  if (static_cast<int>(dtype) < 0 || static_cast<int>(dtype) >= kNumDtypes)
    return Fail(model, EDGEC_ERR_DTYPE,
                "input '" + s.name + "': unknown dtype code " + std::to_string(dtype));
  if (dtype != s.dtype)
    return Fail(model, EDGEC_ERR_DTYPE,
                "input '" + s.name + "' is " + kDtypes[s.dtype].name + ", got " +
                    kDtypes[dtype].name);
  if (ndim < 0 || (ndim > 0 && shape == nullptr))
    return Fail(model, EDGEC_ERR_SHAPE, "input '" + s.name + "': bad ndim or NULL shape");
  bool same = ndim == static_cast<int>(s.shape.size());
  for (int i = 0; same && i < ndim; ++i) same = shape[i] == s.shape[i];
  if (!same)
    return Fail(model, EDGEC_ERR_SHAPE,
                "input '" + s.name + "' was compiled for shape " +
                    ShapeString(s.shape.data(), static_cast<int>(s.shape.size())) + ", got " +
                    ShapeString(shape, ndim) + "; recompile with --input-shape");
  std::memcpy(model->input_values[index].data_ptr(), data, s.nbytes);
  model->input_set[index] = true;
  return EDGEC_OK;
}

edgec_status edgec_model_set_input_by_name(edgec_model *model, const char *name,
                                           const void *data, edgec_dtype dtype, int ndim,
                                           const int64_t *shape) {
  if (model == nullptr) return Fail(nullptr, EDGEC_ERR_ARGUMENT, "model is NULL");
  int index = IndexOf(model->inputs, name);
  if (index < 0)
    return Fail(model, EDGEC_ERR_ARGUMENT,
                std::string("no input named '") + (name ? name : "(null)") + "'");
  return edgec_model_set_input(model, index, data, dtype, ndim, shape);
}

edgec_status edgec_model_run(edgec_model *model) {
  if (model == nullptr) return Fail(nullptr, EDGEC_ERR_ARGUMENT, "model is NULL");
  for (size_t i = 0; i < model->inputs.size(); ++i)
    if (!model->input_set[i])
      return Fail(model, EDGEC_ERR_STATE, "input '" + model->inputs[i].name + "' is not set");
  model->results.clear();
  return Guard(model, [&]() -> edgec_status {
    std::vector<ffi::AnyView> args(model->input_values.begin(), model->input_values.end());
    ffi::Any result;
    model->main.CallPacked(args.data(), static_cast<int32_t>(args.size()), &result);
    std::vector<ffi::Tensor> values;
    if (auto t = result.as<ffi::Tensor>()) {
      values.push_back(*t);
    } else if (auto arr = result.as<ffi::Array<ffi::Any>>()) {
      for (const ffi::Any &v : *arr) {
        auto t2 = v.as<ffi::Tensor>();
        if (!t2) throw Failure{EDGEC_ERR_RUNTIME, "the model returned a non-tensor output"};
        values.push_back(*t2);
      }
    } else {
      throw Failure{EDGEC_ERR_RUNTIME, "the model returned " + result.GetTypeKey()};
    }
    if (values.size() != model->outputs.size())
      throw Failure{EDGEC_ERR_RUNTIME,
                    "the model returned " + std::to_string(values.size()) +
                        " outputs, model.io lists " + std::to_string(model->outputs.size())};
    for (size_t i = 0; i < values.size(); ++i) {
      const TensorSlot &s = model->outputs[i];
      const ffi::Tensor &t = values[i];
      if (ffi::GetDataSize(t) != s.nbytes || !t.IsContiguous() ||
          t.device().device_type != kDLCPU)
        throw Failure{EDGEC_ERR_RUNTIME, "output '" + s.name +
                                             "' does not match model.io (shape " +
                                             ShapeString(t.shape().data(), t.ndim()) + ")"};
    }
    model->results = std::move(values);
    return EDGEC_OK;
  });
}

edgec_status edgec_model_get_output(edgec_model *model, int index, void *buffer,
                                    size_t buffer_bytes) {
  if (model == nullptr) return Fail(nullptr, EDGEC_ERR_ARGUMENT, "model is NULL");
  if (edgec_status st = CheckIndex(model, model->outputs, index, "output")) return st;
  const TensorSlot &s = model->outputs[index];
  if (model->results.empty())
    return Fail(model, EDGEC_ERR_STATE, "no outputs yet: call edgec_model_run first");
  if (buffer == nullptr) return Fail(model, EDGEC_ERR_ARGUMENT, "buffer is NULL");
  if (buffer_bytes < s.nbytes)
    return Fail(model, EDGEC_ERR_BUFFER,
                "output '" + s.name + "' needs " + std::to_string(s.nbytes) + " bytes, the buffer has " +
                    std::to_string(buffer_bytes));
  const ffi::Tensor &t = model->results[index];
  std::memcpy(buffer, static_cast<const char *>(t.data_ptr()) + t.byte_offset(), s.nbytes);
  return EDGEC_OK;
}

const char *edgec_model_last_error(const edgec_model *model) {
  return model ? model->error.c_str() : g_thread_error.c_str();
}

const char *edgec_status_name(edgec_status status) {
  switch (status) {
    case EDGEC_OK: return "ok";
    case EDGEC_ERR_ARGUMENT: return "bad argument";
    case EDGEC_ERR_SHAPE: return "wrong shape";
    case EDGEC_ERR_DTYPE: return "wrong dtype";
    case EDGEC_ERR_BUFFER: return "buffer too small";
    case EDGEC_ERR_FILE: return "bad model file";
    case EDGEC_ERR_STATE: return "wrong call order";
    case EDGEC_ERR_RUNTIME: return "runtime failure";
    case EDGEC_ERR_MEMORY: return "out of memory";
  }
  return "unknown status";
}

const char *edgec_dtype_name(edgec_dtype dtype) {
  int i = static_cast<int>(dtype);
  return i >= 0 && i < kNumDtypes ? kDtypes[i].name : "unknown";
}

size_t edgec_dtype_size(edgec_dtype dtype) {
  int i = static_cast<int>(dtype);
  return i >= 0 && i < kNumDtypes ? kDtypes[i].size : 0;
}

int edgec_dtype_from_name(const char *name) {
  if (name == nullptr) return -1;
  for (int i = 0; i < kNumDtypes; ++i)
    if (std::strcmp(kDtypes[i].name, name) == 0) return i;
  return -1;
}

}  // extern "C"
