// Helpers shared by the HDF5 suites (test_archive.cpp, test_results.cpp): private temporary
// files' bytes, the h5py interpreter, expected errors, damaging files with the HDF5 C API; temporary
// directories, files and commands come from testing.hpp.
#pragma once
#include <doctest/doctest.h>
#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <typeinfo>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "repsearch/core/error.hpp"
#include "testing.hpp"

namespace h5_testing {

namespace fs = std::filesystem;

using testing::run;  // shell commands (h5dump, h5py): exit status and output
using testing::TempDir;
using testing::write_file;

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline std::string quote(const std::string& path) { return "'" + path + "'"; }

inline bool contains(const std::string& text, const std::string& word) { return text.find(word) != std::string::npos; }

// An interpreter that imports h5py: `python3` on PATH, else Debian's /usr/bin/python3 (where
// python3-h5py installs). Absent → the test fails with how to fix it.
inline std::string h5py_python() {
  std::string python;
  for (const std::string candidate : {"python3", "/usr/bin/python3"})
    if (std::system((candidate + " -c 'import h5py' >/dev/null 2>&1").c_str()) == 0) {
      python = candidate;
      break;
    }
  REQUIRE_MESSAGE(!python.empty(), "h5py cannot be imported by python3 or /usr/bin/python3 (install python3-h5py)");
  return python;
}

// `action` must throw E (repsearch::InputError from a reader, OutputError from a writer) about `path`:
// its file is `path`, its message names it, ends with its reason and contains each of `words`.
template <class E>
void expect_error(const std::function<void()>& action, const std::string& path, const std::vector<std::string>& words) {
  std::string message;
  try {
    action();
  } catch (const E& e) {
    message = e.what();
    CHECK(e.file == path);
    CHECK_FALSE(e.reason.empty());
    CHECK(message.size() >= e.reason.size());
    CHECK(message.compare(message.size() - std::min(message.size(), e.reason.size()), std::string::npos, e.reason) == 0);
  } catch (const std::exception& e) {
    FAIL("expected ", typeid(E).name(), ", got another exception: ", e.what());
  }
  INFO("message: ", message);
  REQUIRE_MESSAGE(!message.empty(), "expected repsearch::Error for ", path, ", nothing was thrown");
  CHECK(contains(message, path));
  for (const std::string& word : words) CHECK_MESSAGE(contains(message, word), "missing word: ", word);
}

// Opens an HDF5 file read-write with the C API and hands its id to `edit`.
inline void edit_hdf5(const std::string& path, const std::function<void(hid_t)>& edit) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  REQUIRE(file >= 0);
  edit(file);
  REQUIRE(H5Fclose(file) >= 0);
}

inline void write_int64_attr(hid_t object, const char* name, std::int64_t value) {
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t attr = H5Acreate2(object, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(attr >= 0);
  REQUIRE(H5Awrite(attr, H5T_NATIVE_INT64, &value) >= 0);
  H5Aclose(attr);
  H5Sclose(space);
}

inline bool has_tmp_file(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir))
    if (contains(entry.path().filename().string(), ".tmp-")) return true;
  return false;
}

}  // namespace h5_testing
