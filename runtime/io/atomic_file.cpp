#include "runtime/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <streambuf>
#include <system_error>
#include <vector>

#include "runtime/error.h"

namespace veto {
namespace {

// strerror() is not thread-safe; the generic category gives the same text safely.
std::string errno_text(int err) { return std::generic_category().message(err); }

// A std::streambuf over a POSIX file descriptor, so the streaming writer can use
// std::ostream while we keep the descriptor for fsync(). Remembers the first write error.
class FdStreambuf : public std::streambuf {
 public:
  explicit FdStreambuf(int fd) : fd_(fd), buffer_(size_t{1} << 16) {
    setp(buffer_.data(), buffer_.data() + buffer_.size());
  }
  int error() const { return error_; }

 protected:
  int_type overflow(int_type ch) override {
    if (!flush_buffer()) return traits_type::eof();
    if (!traits_type::eq_int_type(ch, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(ch);
      pbump(1);
    }
    return traits_type::not_eof(ch);
  }

  int sync() override { return flush_buffer() ? 0 : -1; }

  std::streamsize xsputn(const char* s, std::streamsize n) override {
    // Large blocks (tensor payloads) skip the buffer instead of being copied through it.
    if (n < static_cast<std::streamsize>(buffer_.size())) return std::streambuf::xsputn(s, n);
    if (!flush_buffer() || !write_all(s, static_cast<size_t>(n))) return 0;
    return n;
  }

 private:
  bool flush_buffer() {
    const size_t pending = static_cast<size_t>(pptr() - pbase());
    if (pending && !write_all(pbase(), pending)) return false;
    setp(buffer_.data(), buffer_.data() + buffer_.size());
    return true;
  }

  bool write_all(const char* p, size_t n) {
    if (error_) return false;
    while (n > 0) {
      const ssize_t written = ::write(fd_, p, n);
      if (written < 0) {
        if (errno == EINTR) continue;
        error_ = errno;
        return false;
      }
      p += written;
      n -= static_cast<size_t>(written);
    }
    return true;
  }

  int fd_;
  std::vector<char> buffer_;
  int error_ = 0;
};

// Closes the temp file's descriptor and deletes the temp file unless the rename happened,
// so every failure path (including an exception from the caller's writer) cleans up.
struct TempFile {
  std::string path;
  int fd = -1;
  bool renamed = false;
  ~TempFile() {
    if (fd >= 0) ::close(fd);
    if (!renamed) ::unlink(path.c_str());
  }
};

std::string parent_folder(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Makes the rename itself durable. Best effort: some file systems refuse fsync on folders,
// and the new file's contents are already safe at this point.
void sync_folder(const std::string& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& writer) {
  VETO_CHECK(!path.empty(), "cannot write a file with an empty path");
  TempFile temp;
  temp.path = path + ".tmp." + std::to_string(::getpid());
  temp.fd = ::open(temp.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (temp.fd < 0) {
    temp.renamed = true;  // nothing was created, so there is nothing to delete
    fail(path, ": cannot create temporary file ", temp.path, ": ", errno_text(errno));
  }
  {
    FdStreambuf buffer(temp.fd);
    std::ostream stream(&buffer);
    writer(stream);
    stream.flush();
    if (buffer.error()) fail(path, ": cannot write ", temp.path, ": ", errno_text(buffer.error()));
    if (!stream) fail(path, ": cannot write ", temp.path, ": output stream failed");
  }
  if (::fsync(temp.fd) != 0) fail(path, ": cannot sync ", temp.path, ": ", errno_text(errno));
  const int closed = ::close(temp.fd);
  temp.fd = -1;
  if (closed != 0) fail(path, ": cannot close ", temp.path, ": ", errno_text(errno));
  if (::rename(temp.path.c_str(), path.c_str()) != 0)
    fail(path, ": cannot rename ", temp.path, " into place: ", errno_text(errno));
  temp.renamed = true;
  sync_folder(parent_folder(path));
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  write_file_atomic(
      path, [&bytes](std::ostream& out) { out.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); });
}

std::string read_file(const std::string& path, size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, ": cannot open: ", errno_text(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};

  struct stat info {};
  if (::fstat(fd, &info) != 0) fail(path, ": cannot stat: ", errno_text(errno));
  if (S_ISDIR(info.st_mode)) fail(path, ": is a directory, not a file");
  std::string out;
  if (S_ISREG(info.st_mode)) {
    const auto size = static_cast<uint64_t>(info.st_size);
    if (size > max_bytes) fail(path, ": file too large: ", size, " bytes exceeds the limit of ", max_bytes, " bytes");
    out.reserve(static_cast<size_t>(size));
  }
  // Read until EOF rather than trusting st_size: pipes report 0 and files can change size.
  std::vector<char> chunk(size_t{1} << 16);
  for (;;) {
    const ssize_t got = ::read(fd, chunk.data(), chunk.size());
    if (got < 0) {
      if (errno == EINTR) continue;
      fail(path, ": cannot read: ", errno_text(errno));
    }
    if (got == 0) break;
    if (out.size() + static_cast<size_t>(got) > max_bytes)
      fail(path, ": file too large: more than the limit of ", max_bytes, " bytes");
    out.append(chunk.data(), static_cast<size_t>(got));
  }
  return out;
}

}  // namespace veto
