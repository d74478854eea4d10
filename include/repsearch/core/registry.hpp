// The plug-in registries (algorithms, mutation operators, fitnesses, topologies, elite selectors):
// each is a table of {name, factory} pairs (a vector or a map) or of structs with a `name`. One name
// list and one lookup for all of them, so an unknown name gets the same OptionError everywhere.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "repsearch/core/error.hpp"

namespace repsearch::registry {

template <class F>
std::string name_of(const std::pair<const std::string, F>& entry) {
  return entry.first;
}
template <class F>
std::string name_of(const std::pair<std::string, F>& entry) {
  return entry.first;
}
template <class Entry>
std::string name_of(const Entry& entry) {
  return entry.name;
}

template <class Table>
std::vector<std::string> names(const Table& table) {
  std::vector<std::string> out;
  for (const auto& e : table) out.push_back(name_of(e));
  return out;
}

// The entry called `name`; else OptionError "option OPTION: unknown NOUN 'name'; known: a, b".
template <class Table>
const auto& find(const Table& table, const std::string& name, const char* option, const char* noun) {
  for (const auto& e : table)
    if (name_of(e) == name) return e;
  std::string known;
  for (const auto& n : names(table)) known += (known.empty() ? "" : ", ") + n;
  throw OptionError(option, name, "one of " + known,
                    detail::cat("option ", option, ": unknown ", noun, " '", name, "'; known: ", known));
}

}  // namespace repsearch::registry
