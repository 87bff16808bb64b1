// Shared helpers of the benchmarks: statistics, CSV, /proc sampling, child
// processes with a "ready" line, machine description.
#pragma once

#include <glib.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace bench {

double now_ms();  // CLOCK_MONOTONIC in ms (same clock in every process)

// Nearest-rank percentile (p in 0..100) of an unsorted sample; NaN if empty.
double percentile(std::vector<double> v, double p);
double median(const std::vector<double> &v);

// Least-squares slope of y over x.
double slope(const std::vector<double> &x, const std::vector<double> &y);

struct ProcSample {
  double cpu_seconds = 0;  // utime + stime of the whole process
  double rss_mb = 0;       // VmRSS
  int threads = 0;
  bool ok = false;
};
ProcSample sample_proc(pid_t pid);

// A free TCP port on 127.0.0.1 (bound then released).
guint free_port();

// A child process whose stdout is read line by line. The destructor sends
// SIGTERM, waits up to 5 s, then SIGKILLs: nothing outlives the bench.
class Child {
 public:
  explicit Child(const std::vector<std::string> &argv);
  ~Child();
  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // Reads lines until one starts with `prefix`; returns it ("" on timeout/EOF).
  std::string wait_line(const std::string &prefix, double timeout_s);
  void write_line(const std::string &line);
  // SIGTERM and collect every line printed until exit (bounded by timeout_s).
  // A child that dies of a signal of its own (a crash) is reported on
  // stderr by name and pid: the figures before it may still be printed.
  std::vector<std::string> stop(double timeout_s = 10);

 private:
  bool read_line(std::string *line, double timeout_s);
  void report_exit(int status) const;
  std::string name_;
  pid_t pid_ = -1;
  int out_fd_ = -1, in_fd_ = -1;
  std::string buf_;
};

// "nproc=2 cpu=... kernel=... gstreamer=..."
std::string machine_description();

// Directory of the running executable (to find sibling bench binaries).
std::string self_dir();

struct Csv {
  explicit Csv(const std::string &path, const std::string &header);
  ~Csv();
  void row(const std::string &line);
  FILE *f = nullptr;
};

std::string fmt(const char *format, ...) G_GNUC_PRINTF(1, 2);

}  // namespace bench
