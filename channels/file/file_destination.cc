#include "channels/file/file_destination.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace switchboard::channels {

namespace {

std::string errnoText(const char* what, const std::string& path) {
  return std::string(what) + " " + path + ": " + std::strerror(errno);
}

bool writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string safeName(std::string_view text) {
  std::string out;
  for (char c : text) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    out += ok ? c : '_';
  }
  return out;
}

std::atomic<std::uint64_t> tempCounter{0};

}  // namespace

FileDestination::FileDestination(FileDestinationConfig config) : config_(std::move(config)) {}

core::DeliveryResult FileDestination::send(const core::DeliveryRequest& request) {
  std::error_code ec;
  std::filesystem::create_directories(config_.directory, ec);
  if (ec) return core::DeliveryResult::retry("cannot create " + config_.directory + ": " + ec.message());
  std::string name = safeName(request.channelId) + "-" + std::to_string(request.messageId) + "-" +
                     std::to_string(request.deliveryId) + "." + config_.extension;
  std::string finalPath = config_.directory + "/" + name;
  std::string tempPath = config_.directory + "/.tmp-" + std::to_string(::getpid()) + "-" +
                         std::to_string(tempCounter++) + "-" + name;
  int fd = ::open(tempPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return core::DeliveryResult::retry(errnoText("cannot open", tempPath));
  bool ok = writeAll(fd, request.payload) && (!config_.fsync || ::fsync(fd) == 0);
  std::string failure = ok ? std::string() : errnoText("cannot write", tempPath);
  ::close(fd);
  if (!ok) {
    ::unlink(tempPath.c_str());
    return core::DeliveryResult::retry(failure);
  }
  if (::rename(tempPath.c_str(), finalPath.c_str()) != 0) {
    failure = errnoText("cannot rename to", finalPath);
    ::unlink(tempPath.c_str());
    return core::DeliveryResult::retry(failure);
  }
  if (config_.fsync) {
    int dir = ::open(config_.directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
      ::fsync(dir);
      ::close(dir);
    }
  }
  // The file's name is the delivery's: writing it again replaces it with the same bytes.
  core::DeliveryResult result = core::DeliveryResult::ok("wrote " + name);
  result.repeatable = true;
  return result;
}

Result<std::unique_ptr<core::Destination>> FileDestination::create(core::ConfigReader& config,
                                                                   const core::ConnectorContext& ctx) {
  FileDestinationConfig c;
  c.directory = config.requiredString("directory",
                                      "directory for delivered files; relative to the data dir");
  if (!c.directory.empty() && c.directory.front() != '/') {
    c.directory = ctx.dataDir + "/" + c.directory;
  }
  c.extension = config.string("extension", "json", "file name extension");
  if (c.extension.empty() || c.extension.find('/') != std::string::npos) {
    config.invalid("extension", "a file extension without '/'");
  }
  c.fsync = config.boolean("fsync", true, "fsync each file and the directory before renaming");
  if (auto r = config.finish(); !r) return std::unexpected(r.error());
  return std::make_unique<FileDestination>(std::move(c));
}

void registerFileConnectors(core::ConnectorRegistry& registry) {
  registry.addDestination("file", &FileDestination::create);
}

}  // namespace switchboard::channels
