// edgec's emulated ARM device: the server side of one TVM RPC session, run under
// qemu-user. The host's Python RPC server does the handshake and then execs
//   qemu-aarch64 -L SYSROOT edgec_rpc_worker FD
// so from here on every remote call runs on the aarch64 TVM runtime, as on a board.
// The Python server registers the globals below in Python; there is no Python here.
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

namespace ffi = tvm::ffi;

#ifndef EDGEC_RUNTIME_VERSION
#define EDGEC_RUNTIME_VERSION ""
#endif

namespace {

// The session's folder is the working directory the host chdir'ed into before exec;
// looked up on every call, like the Python server does.
std::string WorkPath(const std::string& name) {
  char cwd[PATH_MAX];
  if (getcwd(cwd, sizeof(cwd)) == nullptr) {
    TVM_FFI_THROW(RuntimeError) << "edgec worker: cannot read the working directory";
  }
  return std::string(cwd) + "/" + name;
}

// Linux arm64 HWCAP/HWCAP2 bits, named as /proc/cpuinfo "Features" names them
// (arch/arm64/kernel/cpuinfo.c). qemu-user does not emulate /proc/cpuinfo for
// aarch64 (7.2 shows the x86 host's), but it fills the auxv with its emulated CPU's
// capabilities, which is what the generated code can actually use.
const char* const kHwcap[] = {
    "fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "atomics", "fphp",
    "asimdhp", "cpuid", "asimdrdm", "jscvt", "fcma", "lrcpc", "dcpop", "sha3", "sm3", "sm4",
    "asimddp", "sha512", "sve", "asimdfhm", "dit", "uscat", "ilrcpc", "flagm", "ssbs", "sb",
    "paca", "pacg"};
const char* const kHwcap2[] = {
    "dcpodp", "sve2", "sveaes", "svepmull", "svebitperm", "svesha3", "svesm4", "flagm2",
    "frint", "svei8mm", "svef32mm", "svef64mm", "svebf16", "i8mm", "bf16", "dgh", "rng",
    "bti", "mte", "ecv", "afp", "rpres", "mte3", "sme", "smei16i64", "smef64f64", "smei8i32",
    "smef16f32", "smeb16f32", "smef32f32", "smefa64", "wfxt", "ebf16", "sveebf16"};

ffi::String Info() {
  ffi::json::Array features;
  auto add = [&](unsigned long bits, const char* const* names, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      if (bits & (1UL << i)) features.push_back(ffi::String(names[i]));
    }
  };
  add(getauxval(AT_HWCAP), kHwcap, sizeof(kHwcap) / sizeof(*kHwcap));
  add(getauxval(AT_HWCAP2), kHwcap2, sizeof(kHwcap2) / sizeof(*kHwcap2));
  ffi::json::Object info;
  info.Set(ffi::String("arch"), ffi::String("aarch64"));
  info.Set(ffi::String("features"), features);
  info.Set(ffi::String("emulated"), true);
  info.Set(ffi::String("server"), ffi::String("edgec-emulated"));
  info.Set(ffi::String("runtime"), ffi::String(EDGEC_RUNTIME_VERSION));
  // qemu-user threads are host threads: the CPUs this process may use are the device's.
  cpu_set_t cpus;
  int64_t cores = sched_getaffinity(0, sizeof(cpus), &cpus) == 0
                      ? CPU_COUNT(&cpus)
                      : static_cast<int64_t>(sysconf(_SC_NPROCESSORS_ONLN));
  info.Set(ffi::String("cores"), cores);
  return ffi::json::Stringify(info);
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// What the instrument records; shared with the instrument closure so that a VM which
// somehow kept the instrument would never touch a dead stack frame.
struct Trace {
  std::vector<std::tuple<ffi::String, int64_t, int64_t>> calls;
  std::vector<int64_t> starts;  // VM calls nest only through the VM: a stack suffices
};

// Timed here rather than from the client because every callback would otherwise be
// an RPC round trip. Mirrors edgec/runtime/profiler.py `profile`, minus its trick of
// calling kernels from the instrument: that trick keeps Python's argument conversion
// out of kernel times, and a C++ callback converts nothing.
ffi::String Profile(ffi::Module vm, int64_t repeat) {
  if (repeat < 1) TVM_FFI_THROW(ValueError) << "edgec.device.profile: repeat must be >= 1";
  ffi::Optional<ffi::Function> set_instrument = vm->GetFunction("set_instrument");
  ffi::Optional<ffi::Function> invoke = vm->GetFunction("invoke_stateful");
  if (!set_instrument || !invoke) {
    TVM_FFI_THROW(RuntimeError) << "edgec.device.profile: " << vm->kind()
                                << " module is not a Relax VM (no set_instrument)";
  }
  auto trace = std::make_shared<Trace>();
  ffi::Function instrument = ffi::Function::FromPacked(
      [trace](ffi::PackedArgs args, ffi::Any* rv) {
        // args: func, symbol, before_run, ret_value, call args...
        if (args[2].cast<bool>()) {
          trace->starts.push_back(NowNs());
        } else {
          int64_t stop = NowNs();
          if (trace->starts.empty()) {
            TVM_FFI_THROW(RuntimeError) << "edgec.device.profile: unbalanced VM callback";
          }
          trace->calls.emplace_back(args[1].cast<ffi::String>(), trace->starts.back(), stop);
          trace->starts.pop_back();
        }
        *rv = static_cast<int64_t>(0);  // VMInstrumentReturnKind::kNoOp
      });

  // The VM keeps its instrument: clear it on every way out, or the client's next plain
  // run would be instrumented too. A null Function is what the VM takes as "none".
  struct Clear {
    ffi::Function f;
    ~Clear() {
      try {
        f(ffi::Function(nullptr));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "edgec_rpc_worker: could not clear the instrument: %s\n",
                     e.what());
      }
    }
  } clear{*set_instrument};
  (*set_instrument)(instrument);

  ffi::json::Array walls, runs, span;
  for (int64_t i = 0; i <= repeat; ++i) {
    trace->calls.clear();
    trace->starts.clear();
    int64_t t0 = NowNs();
    (*invoke)(ffi::String("main"));
    int64_t t1 = NowNs();
    if (i == 0) continue;  // warm-up: first-touch allocation, page faults, thread start
    ffi::json::Array run;
    for (const auto& [symbol, start, stop] : trace->calls) {
      run.push_back(ffi::json::Array{symbol, start, stop});
    }
    runs.push_back(run);
    walls.push_back(static_cast<double>(t1 - t0) / 1e9);
    span = ffi::json::Array{t0, t1};
  }
  ffi::json::Object out;
  out.Set(ffi::String("walls"), walls);
  out.Set(ffi::String("runs"), runs);
  out.Set(ffi::String("span"), span);
  return ffi::json::Stringify(out);
}

// We inherit whatever sockets the server process had open that are not close-on-exec,
// and TVM's C++ sockets are not (a client made with tvm.rpc.connect in the server's own
// process, say). Holding the client's end of our own connection would keep the session
// alive after the client is gone, so keep no socket but ours.
void CloseOtherSockets(int keep) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return;
  std::vector<int> others;
  while (const dirent* entry = readdir(dir)) {
    int fd = std::atoi(entry->d_name);
    struct stat st;
    if (fd > 2 && fd != keep && fd != dirfd(dir) && fstat(fd, &st) == 0 &&
        S_ISSOCK(st.st_mode)) {
      others.push_back(fd);
    }
  }
  closedir(dir);
  for (int fd : others) close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  char* end = nullptr;
  long fd = argc == 2 ? std::strtol(argv[1], &end, 10) : -1;
  if (fd < 0 || end == argv[1] || *end != '\0') {
    std::fprintf(stderr, "usage: %s SOCKET_FD (an RPC connection after the handshake)\n",
                 argv[0]);
    return 2;
  }
  // A client that vanishes while we reply must end the session with an error from
  // send(), not kill the process with SIGPIPE (TVM's socket sends without MSG_NOSIGNAL).
  signal(SIGPIPE, SIG_IGN);
  CloseOtherSockets(static_cast<int>(fd));
  ffi::Function::SetGlobal("tvm.rpc.server.workpath",
                           ffi::Function::FromTyped([](ffi::String name) {
                             return ffi::String(WorkPath(name));
                           }),
                           true);
  ffi::Function::SetGlobal("tvm.rpc.server.load_module",
                           ffi::Function::FromTyped([](ffi::String name) {
                             return ffi::Module::LoadFromFile(WorkPath(name));
                           }),
                           true);
  ffi::Function::SetGlobal("edgec.device.info", ffi::Function::FromTyped(Info), true);
  ffi::Function::SetGlobal("edgec.device.profile", ffi::Function::FromTyped(Profile), true);
  try {
    ffi::Function::GetGlobalRequired("rpc.ServerLoop")(static_cast<int64_t>(fd));
  } catch (const std::exception& e) {
    // Errors inside remote calls go back to the client; what reaches here is the
    // connection itself failing (client killed mid-message, reset). The session is over
    // either way, and a non-zero status would make the host's Python server raise in
    // its accept thread, so report it and end normally.
    std::fprintf(stderr, "edgec_rpc_worker: session ended: %s\n", e.what());
  }
  return 0;
}
