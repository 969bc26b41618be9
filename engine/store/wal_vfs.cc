#include "engine/store/wal_vfs.h"

#include <sqlite3.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <vector>

namespace switchboard::store {
namespace {

constexpr std::size_t kMaxBuffered = 4 << 20;  // a larger transaction goes out every 4 MiB
constexpr std::size_t kMaxWrite = 0x1f000;     // 124 KiB: under the unix VFS's limit per write
constexpr int kWalHeader = 32;                 // the log file's own header
constexpr int kFrameHeader = 24;               // each frame's header, before its page

std::atomic<std::uint64_t> gLogWrites{0};
std::atomic<std::uint64_t> gLogSyscalls{0};
std::atomic<std::uint64_t> gLogReads{0};
std::atomic<std::uint64_t> gLogMappedReads{0};

// A log file mapped read-only once per process, shared by every connection's handle on it
// (sessions of one pool, the checkpointer), so a page another connection committed is copied from
// memory instead of read with a system call. The mapping reserves kMapBytes of address space; only
// pages read take memory, and they are the file's own page-cache pages (MAP_SHARED sees every
// write to the file, by this process or another). Touching a mapped page beyond the end of the
// file raises SIGBUS, so a read is served from it only below `known`: a size the file has had
// since the last truncation this process made (our writes, reads that came back whole, and size
// queries raise it; a truncation through this VFS lowers it). SQLite reads a log only where its
// index or a size query says frames are, and a log is shortened only (journal_size_limit, a
// TRUNCATE checkpoint) while no connection reads it, so a truncation by another process cannot
// fall under a read either.
constexpr std::size_t kMapBytes = std::size_t{1} << 30;
struct LogMap {
  dev_t dev = 0;
  ino_t ino = 0;
  const char* base = nullptr;
  std::atomic<sqlite3_int64> known{0};
  int handles = 0;
};
std::mutex gMapsMutex;
std::vector<LogMap*> gMaps;

LogMap* openMap(const char* name) {
  // SQLite holds no POSIX locks on a log file (they are on the database and the -shm file), so
  // this descriptor's close cannot drop any.
  const int fd = ::open(name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  struct stat st {};
  LogMap* found = nullptr;
  if (::fstat(fd, &st) == 0) {
    std::lock_guard lock(gMapsMutex);
    for (LogMap* m : gMaps) {
      if (m->dev == st.st_dev && m->ino == st.st_ino) found = m;
    }
    if (found == nullptr) {
      void* p = ::mmap(nullptr, kMapBytes, PROT_READ, MAP_SHARED, fd, 0);
      if (p != MAP_FAILED) {
        found = new LogMap();
        found->dev = st.st_dev;
        found->ino = st.st_ino;
        found->base = static_cast<const char*>(p);
        found->known = st.st_size;
        gMaps.push_back(found);
      }
    }
    if (found != nullptr) ++found->handles;
  }
  ::close(fd);
  return found;
}

void closeMap(LogMap* m) {
  if (m == nullptr) return;
  std::lock_guard lock(gMapsMutex);
  if (--m->handles > 0) return;
  ::munmap(const_cast<char*>(m->base), kMapBytes);
  gMaps.erase(std::find(gMaps.begin(), gMaps.end(), m));
  delete m;
}

void raiseKnown(LogMap* m, sqlite3_int64 size) {
  if (m == nullptr) return;
  sqlite3_int64 k = m->known.load(std::memory_order_relaxed);
  while (k < size && !m->known.compare_exchange_weak(k, size, std::memory_order_relaxed)) {
  }
}

sqlite3_vfs* gReal = nullptr;  // the VFS underneath (the platform default when installed)

// What SQLite allocates for each open file (szOsFile): this header, then the real VFS's file.
struct File {
  sqlite3_file base;               // first: SQLite sees a sqlite3_file
  sqlite3_file* real = nullptr;    // the underlying file, right after this struct
  bool isLog = false;              // a write-ahead log (SQLITE_OPEN_WAL)
  File* log = nullptr;             // a database: its connection's log, once open
  File* db = nullptr;              // a log: its connection's database file
  std::string pending;             // a log: consecutive writes not yet made
  sqlite3_int64 pendingAt = 0;     // file offset of pending's first byte
  bool commitPagePending = false;  // the next write is the page of a commit frame
  LogMap* map = nullptr;           // a log: its mapping, when it could be made
};
constexpr std::size_t kRealOffset = (sizeof(File) + 15) & ~static_cast<std::size_t>(15);

File* self(sqlite3_file* f) { return reinterpret_cast<File*>(f); }
const sqlite3_io_methods* realMethods(File* f) { return f->real->pMethods; }

// Writes what a log holds back, in as few calls as the VFS underneath takes: SQLite's unix VFS
// writes at most 128 KiB - 1 bytes per call (it masks the length), so larger runs go in pieces.
int flush(File* f) {
  if (f == nullptr || f->pending.empty()) return SQLITE_OK;
  int rc = SQLITE_OK;
  for (std::size_t done = 0; done < f->pending.size() && rc == SQLITE_OK; done += kMaxWrite) {
    const std::size_t n = std::min(kMaxWrite, f->pending.size() - done);
    gLogSyscalls.fetch_add(1, std::memory_order_relaxed);
    rc = realMethods(f)->xWrite(f->real, f->pending.data() + done, static_cast<int>(n),
                                f->pendingAt + static_cast<sqlite3_int64>(done));
    if (rc == SQLITE_OK) raiseKnown(f->map, f->pendingAt + static_cast<sqlite3_int64>(done + n));
  }
  f->pending.clear();
  f->commitPagePending = false;
  return rc;
}

int xClose(sqlite3_file* file) {
  File* f = self(file);
  int rc = f->isLog ? flush(f) : SQLITE_OK;
  if (f->isLog && f->db != nullptr && f->db->log == f) f->db->log = nullptr;
  if (!f->isLog && f->log != nullptr && f->log->db == f) f->log->db = nullptr;
  const int closed = realMethods(f)->xClose(f->real);
  if (rc == SQLITE_OK) rc = closed;
  closeMap(f->map);
  f->~File();
  return rc;
}

int xRead(sqlite3_file* file, void* out, int amount, sqlite3_int64 offset) {
  File* f = self(file);
  if (!f->isLog) return realMethods(f)->xRead(f->real, out, amount, offset);
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  gLogReads.fetch_add(1, std::memory_order_relaxed);
  const sqlite3_int64 end = offset + amount;
  if (f->map != nullptr && offset >= 0 && amount >= 0 && end <= static_cast<sqlite3_int64>(kMapBytes) &&
      end <= f->map->known.load(std::memory_order_relaxed)) {
    std::memcpy(out, f->map->base + offset, static_cast<std::size_t>(amount));
    gLogMappedReads.fetch_add(1, std::memory_order_relaxed);
    return SQLITE_OK;
  }
  const int rc = realMethods(f)->xRead(f->real, out, amount, offset);
  if (rc == SQLITE_OK) raiseKnown(f->map, end);  // the bytes were there (a short read is not OK)
  return rc;
}

std::uint32_t bigEndian32(const void* p) {
  const auto* b = static_cast<const unsigned char*>(p);
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) |
         b[3];
}

int xWrite(sqlite3_file* file, const void* data, int amount, sqlite3_int64 offset) {
  File* f = self(file);
  if (!f->isLog) return realMethods(f)->xWrite(f->real, data, amount, offset);
  gLogWrites.fetch_add(1, std::memory_order_relaxed);
  const bool follows = offset == f->pendingAt + static_cast<sqlite3_int64>(f->pending.size());
  if (!f->pending.empty() &&
      (!follows || f->pending.size() + static_cast<std::size_t>(amount) > kMaxBuffered)) {
    if (int rc = flush(f); rc != SQLITE_OK) return rc;
  }
  if (f->pending.empty()) f->pendingAt = offset;
  f->pending.append(static_cast<const char*>(data), static_cast<std::size_t>(amount));
  // A frame header whose "database size after commit" is set ends a transaction: once its page
  // follows, the commit goes out, and an error reaches SQLite from the write it belongs to.
  if (f->commitPagePending) return flush(f);
  if (amount == kFrameHeader && offset >= kWalHeader &&
      bigEndian32(static_cast<const char*>(data) + 4) != 0) {
    f->commitPagePending = true;
  }
  return SQLITE_OK;
}

int xTruncate(sqlite3_file* file, sqlite3_int64 size) {
  File* f = self(file);
  if (int rc = flush(f->isLog ? f : nullptr); rc != SQLITE_OK) return rc;
  if (f->map != nullptr) {  // lowered first: no read below the old end goes to the mapping now
    sqlite3_int64 k = f->map->known.load(std::memory_order_relaxed);
    while (k > size && !f->map->known.compare_exchange_weak(k, size, std::memory_order_relaxed)) {
    }
  }
  return realMethods(f)->xTruncate(f->real, size);
}

int xSync(sqlite3_file* file, int flags) {
  File* f = self(file);
  if (int rc = flush(f->isLog ? f : nullptr); rc != SQLITE_OK) return rc;
  return realMethods(f)->xSync(f->real, flags);
}

int xFileSize(sqlite3_file* file, sqlite3_int64* size) {
  File* f = self(file);
  if (int rc = flush(f->isLog ? f : nullptr); rc != SQLITE_OK) return rc;
  const int rc = realMethods(f)->xFileSize(f->real, size);
  if (rc == SQLITE_OK) raiseKnown(f->map, *size);
  return rc;
}

int xLock(sqlite3_file* file, int level) {
  return realMethods(self(file))->xLock(self(file)->real, level);
}
int xUnlock(sqlite3_file* file, int level) {
  return realMethods(self(file))->xUnlock(self(file)->real, level);
}
int xCheckReservedLock(sqlite3_file* file, int* out) {
  return realMethods(self(file))->xCheckReservedLock(self(file)->real, out);
}

int xFileControl(sqlite3_file* file, int op, void* arg) {
  File* f = self(file);
  if (int rc = flush(f->isLog ? f : nullptr); rc != SQLITE_OK) return rc;
  return realMethods(f)->xFileControl(f->real, op, arg);
}

int xSectorSize(sqlite3_file* file) {
  return realMethods(self(file))->xSectorSize(self(file)->real);
}
int xDeviceCharacteristics(sqlite3_file* file) {
  return realMethods(self(file))->xDeviceCharacteristics(self(file)->real);
}

// The shared-memory index lives with the database file: every publication of a commit to other
// connections (and every lock a transaction takes there) goes through these, so the connection's
// log is written first.
int xShmMap(sqlite3_file* file, int page, int size, int extend, void volatile** out) {
  File* f = self(file);
  if (int rc = flush(f->log); rc != SQLITE_OK) return rc;
  return realMethods(f)->xShmMap(f->real, page, size, extend, out);
}

int xShmLock(sqlite3_file* file, int offset, int n, int flags) {
  File* f = self(file);
  if (int rc = flush(f->log); rc != SQLITE_OK) return rc;
  return realMethods(f)->xShmLock(f->real, offset, n, flags);
}

void xShmBarrier(sqlite3_file* file) {
  File* f = self(file);
  flush(f->log);  // a commit's frames went out with its commit frame; this is for anything else
  realMethods(f)->xShmBarrier(f->real);
}

int xShmUnmap(sqlite3_file* file, int deleteFlag) {
  File* f = self(file);
  if (int rc = flush(f->log); rc != SQLITE_OK) return rc;
  return realMethods(f)->xShmUnmap(f->real, deleteFlag);
}

int xFetch(sqlite3_file* file, sqlite3_int64 offset, int amount, void** out) {
  File* f = self(file);
  if (f->isLog) {
    *out = nullptr;  // never mapped: reads go through xRead, which writes what is held back first
    return SQLITE_OK;
  }
  return realMethods(f)->xFetch(f->real, offset, amount, out);
}

int xUnfetch(sqlite3_file* file, sqlite3_int64 offset, void* p) {
  return realMethods(self(file))->xUnfetch(self(file)->real, offset, p);
}

// Version 3 methods; a file whose real methods are older gets a copy without the newer ones.
const sqlite3_io_methods kMethods = {
    .iVersion = 3,
    .xClose = xClose,
    .xRead = xRead,
    .xWrite = xWrite,
    .xTruncate = xTruncate,
    .xSync = xSync,
    .xFileSize = xFileSize,
    .xLock = xLock,
    .xUnlock = xUnlock,
    .xCheckReservedLock = xCheckReservedLock,
    .xFileControl = xFileControl,
    .xSectorSize = xSectorSize,
    .xDeviceCharacteristics = xDeviceCharacteristics,
    .xShmMap = xShmMap,
    .xShmLock = xShmLock,
    .xShmBarrier = xShmBarrier,
    .xShmUnmap = xShmUnmap,
    .xFetch = xFetch,
    .xUnfetch = xUnfetch,
};
const sqlite3_io_methods kMethodsV1 = [] {
  sqlite3_io_methods m = kMethods;
  m.iVersion = 1;
  m.xShmMap = nullptr;
  m.xShmLock = nullptr;
  m.xShmBarrier = nullptr;
  m.xShmUnmap = nullptr;
  m.xFetch = nullptr;
  m.xUnfetch = nullptr;
  return m;
}();

bool ours(const sqlite3_file* f) {
  return f != nullptr && (f->pMethods == &kMethods || f->pMethods == &kMethodsV1);
}

int xOpen(sqlite3_vfs*, const char* name, sqlite3_file* file, int flags, int* outFlags) {
  File* f = new (file) File();
  f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kRealOffset);
  std::memset(f->real, 0, static_cast<std::size_t>(gReal->szOsFile));
  const int rc = gReal->xOpen(gReal, name, f->real, flags, outFlags);
  if (f->real->pMethods == nullptr) {  // nothing to close
    f->~File();
    file->pMethods = nullptr;
    return rc == SQLITE_OK ? SQLITE_CANTOPEN : rc;
  }
  f->base.pMethods = f->real->pMethods->iVersion >= 3 ? &kMethods : &kMethodsV1;
  f->isLog = (flags & SQLITE_OPEN_WAL) != 0 && f->real->pMethods->iVersion >= 1;
  if (rc == SQLITE_OK && f->isLog && name != nullptr) {
    f->map = openMap(name);
    sqlite3_file* db = sqlite3_database_file_object(name);
    if (ours(db)) {
      f->db = self(db);
      self(db)->log = f;
    }
  }
  return rc;
}

// The VFS's own methods go to the real VFS with the real VFS as their first argument.
int xDelete(sqlite3_vfs*, const char* name, int syncDir) {
  return gReal->xDelete(gReal, name, syncDir);
}
int xAccess(sqlite3_vfs*, const char* name, int flags, int* out) {
  return gReal->xAccess(gReal, name, flags, out);
}
int xFullPathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return gReal->xFullPathname(gReal, name, n, out);
}
void* xDlOpen(sqlite3_vfs*, const char* name) { return gReal->xDlOpen(gReal, name); }
void xDlError(sqlite3_vfs*, int n, char* out) { gReal->xDlError(gReal, n, out); }
void (*xDlSym(sqlite3_vfs*, void* h, const char* sym))(void) {
  return gReal->xDlSym(gReal, h, sym);
}
void xDlClose(sqlite3_vfs*, void* h) { gReal->xDlClose(gReal, h); }
int xRandomness(sqlite3_vfs*, int n, char* out) { return gReal->xRandomness(gReal, n, out); }
int xSleep(sqlite3_vfs*, int us) { return gReal->xSleep(gReal, us); }
int xCurrentTime(sqlite3_vfs*, double* out) { return gReal->xCurrentTime(gReal, out); }
int xGetLastError(sqlite3_vfs*, int n, char* out) { return gReal->xGetLastError(gReal, n, out); }
int xCurrentTimeInt64(sqlite3_vfs*, sqlite3_int64* out) {
  return gReal->xCurrentTimeInt64(gReal, out);
}
int xSetSystemCall(sqlite3_vfs*, const char* name, sqlite3_syscall_ptr p) {
  return gReal->xSetSystemCall(gReal, name, p);
}
sqlite3_syscall_ptr xGetSystemCall(sqlite3_vfs*, const char* name) {
  return gReal->xGetSystemCall(gReal, name);
}
const char* xNextSystemCall(sqlite3_vfs*, const char* name) {
  return gReal->xNextSystemCall(gReal, name);
}

}  // namespace

bool installWalCoalescingVfs() {
  static const bool installed = [] {
    const char* plain = std::getenv("SWITCHBOARD_SQLITE_PLAIN_VFS");
    if (plain != nullptr && std::strcmp(plain, "1") == 0) return false;
    gReal = sqlite3_vfs_find(nullptr);
    if (gReal == nullptr || gReal->iVersion < 3) return false;
    static sqlite3_vfs vfs{};
    vfs.iVersion = 3;
    vfs.szOsFile = static_cast<int>(kRealOffset) + gReal->szOsFile;
    vfs.mxPathname = gReal->mxPathname;
    vfs.zName = "switchboard-wal";
    vfs.xOpen = xOpen;
    vfs.xDelete = xDelete;
    vfs.xAccess = xAccess;
    vfs.xFullPathname = xFullPathname;
    vfs.xDlOpen = xDlOpen;
    vfs.xDlError = xDlError;
    vfs.xDlSym = xDlSym;
    vfs.xDlClose = xDlClose;
    vfs.xRandomness = xRandomness;
    vfs.xSleep = xSleep;
    vfs.xCurrentTime = xCurrentTime;
    vfs.xGetLastError = xGetLastError;
    vfs.xCurrentTimeInt64 = xCurrentTimeInt64;
    vfs.xSetSystemCall = xSetSystemCall;
    vfs.xGetSystemCall = xGetSystemCall;
    vfs.xNextSystemCall = xNextSystemCall;
    return sqlite3_vfs_register(&vfs, /*makeDflt=*/1) == SQLITE_OK;
  }();
  return installed;
}

WalVfsStats walVfsStats() {
  return {gLogWrites.load(std::memory_order_relaxed), gLogSyscalls.load(std::memory_order_relaxed),
          gLogReads.load(std::memory_order_relaxed), gLogMappedReads.load(std::memory_order_relaxed)};
}

}  // namespace switchboard::store
