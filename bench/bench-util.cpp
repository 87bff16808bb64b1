#include "bench-util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gst/gst.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace bench {

double now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  size_t rank = size_t(std::ceil(p / 100.0 * v.size()));
  if (rank < 1) rank = 1;
  if (rank > v.size()) rank = v.size();
  return v[rank - 1];
}

double median(const std::vector<double> &v) { return percentile(v, 50); }

double slope(const std::vector<double> &x, const std::vector<double> &y) {
  size_t n = std::min(x.size(), y.size());
  if (n < 2) return NAN;
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; i++) mx += x[i], my += y[i];
  mx /= n, my /= n;
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < n; i++) sxy += (x[i] - mx) * (y[i] - my), sxx += (x[i] - mx) * (x[i] - mx);
  return sxx > 0 ? sxy / sxx : NAN;
}

ProcSample sample_proc(pid_t pid) {
  ProcSample s;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return s;
  // Fields after the ")" of the command name: state is field 3, utime 14, stime 15.
  auto close = line.rfind(')');
  if (close == std::string::npos) return s;
  std::istringstream rest(line.substr(close + 2));
  std::vector<std::string> f;
  std::string tok;
  while (rest >> tok) f.push_back(tok);
  if (f.size() < 13) return s;
  double hz = double(sysconf(_SC_CLK_TCK));
  s.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / hz;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss_mb = std::stod(line.substr(6)) / 1024.0;
    if (line.rfind("Threads:", 0) == 0) s.threads = std::stoi(line.substr(8));
  }
  s.ok = true;
  return s;
}

guint free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  guint port = 0;
  if (bind(fd, (sockaddr *)&a, sizeof a) == 0) {
    socklen_t len = sizeof a;
    getsockname(fd, (sockaddr *)&a, &len);
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

Child::Child(const std::vector<std::string> &argv) {
  for (const auto &a : argv) name_ += (name_.empty() ? "" : " ") + a;
  int out[2], in[2];
  if (pipe(out) != 0) return;
  if (pipe(in) != 0) {
    ::close(out[0]), ::close(out[1]);
    return;
  }
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(in[0], 0);
    ::close(out[0]), ::close(out[1]), ::close(in[0]), ::close(in[1]);
    std::vector<char *> args;
    for (auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    fprintf(stderr, "exec %s: %s\n", args[0], strerror(errno));
    _exit(127);
  }
  ::close(out[1]);
  ::close(in[0]);
  if (pid < 0) {
    ::close(out[0]), ::close(in[1]);
    return;
  }
  pid_ = pid;
  out_fd_ = out[0];
  in_fd_ = in[1];
}

Child::~Child() {
  if (pid_ > 0) stop(5);
  if (out_fd_ >= 0) ::close(out_fd_);
  if (in_fd_ >= 0) ::close(in_fd_);
}

bool Child::read_line(std::string *line, double timeout_s) {
  double deadline = now_ms() + timeout_s * 1000;
  for (;;) {
    auto nl = buf_.find('\n');
    if (nl != std::string::npos) {
      *line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return true;
    }
    double left = deadline - now_ms();
    if (left <= 0 || out_fd_ < 0) return false;
    pollfd p{out_fd_, POLLIN, 0};
    int r = poll(&p, 1, int(left) + 1);
    if (r <= 0) continue;
    char tmp[4096];
    ssize_t n = read(out_fd_, tmp, sizeof tmp);
    if (n <= 0) {
      ::close(out_fd_);
      out_fd_ = -1;
      return false;
    }
    buf_.append(tmp, size_t(n));
  }
}

std::string Child::wait_line(const std::string &prefix, double timeout_s) {
  double deadline = now_ms() + timeout_s * 1000;
  std::string line;
  while (now_ms() < deadline) {
    if (!read_line(&line, (deadline - now_ms()) / 1000)) return "";
    if (line.rfind(prefix, 0) == 0) return line;
  }
  return "";
}

void Child::write_line(const std::string &line) {
  if (in_fd_ < 0) return;
  std::string l = line + "\n";
  if (write(in_fd_, l.data(), l.size()) < 0) {
    ::close(in_fd_);
    in_fd_ = -1;
  }
}

std::vector<std::string> Child::stop(double timeout_s) {
  std::vector<std::string> lines;
  if (pid_ <= 0) return lines;
  kill(pid_, SIGTERM);
  double deadline = now_ms() + timeout_s * 1000;
  std::string line;
  while (now_ms() < deadline && read_line(&line, (deadline - now_ms()) / 1000)) lines.push_back(line);
  int status = 0;
  while (now_ms() < deadline) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      report_exit(status);
      pid_ = -1;
      return lines;
    }
    g_usleep(20000);
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return lines;
}

void Child::report_exit(int status) const {
  // SIGTERM is how stop() ends it; anything else is the child's own death.
  if (WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM)
    fprintf(stderr, "bench: child pid %d died of signal %d (%s): %s\n", int(pid_), WTERMSIG(status),
            strsignal(WTERMSIG(status)), name_.c_str());
}

std::string machine_description() {
  std::string cpu = "?";
  std::ifstream ci("/proc/cpuinfo");
  std::string line;
  while (std::getline(ci, line))
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  utsname u{};
  uname(&u);
  gchar *gv = gst_version_string();
  std::string s = fmt("nproc=%ld cpu=\"%s\" kernel=%s gstreamer=\"%s\"", sysconf(_SC_NPROCESSORS_ONLN),
                      cpu.c_str(), u.release, gv);
  g_free(gv);
  double load[3] = {0, 0, 0};
  if (getloadavg(load, 3) == 3) s += fmt(" loadavg=%.2f,%.2f,%.2f", load[0], load[1], load[2]);
  return s;
}

std::string self_dir() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  buf[n] = 0;
  std::string p(buf);
  return p.substr(0, p.rfind('/'));
}

Csv::Csv(const std::string &path, const std::string &header) {
  if (path.empty()) return;
  f = fopen(path.c_str(), "w");
  if (f) fprintf(f, "%s\n", header.c_str());
}
Csv::~Csv() {
  if (f) fclose(f);
}
void Csv::row(const std::string &line) {
  if (f) fprintf(f, "%s\n", line.c_str()), fflush(f);
}

std::string fmt(const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  gchar *s = g_strdup_vprintf(format, ap);
  va_end(ap);
  std::string r(s);
  g_free(s);
  return r;
}

}  // namespace bench
