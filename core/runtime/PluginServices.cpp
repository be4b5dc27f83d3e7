#include "runtime/PluginServices.h"

#include <sstream>

namespace ferry::core {

void Metrics::add(const std::string& name, const std::string& instance, double delta) {
  std::lock_guard lock(mutex_);
  auto& v = values_[{name, instance}];
  v.first = false;
  v.second += delta;
}

void Metrics::set(const std::string& name, const std::string& instance, double value) {
  std::lock_guard lock(mutex_);
  values_[{name, instance}] = {true, value};
}

double Metrics::get(const std::string& name, const std::string& instance) const {
  std::lock_guard lock(mutex_);
  auto it = values_.find({name, instance});
  return it == values_.end() ? 0 : it->second.second;
}

std::string Metrics::render() const {
  std::lock_guard lock(mutex_);
  std::ostringstream out;
  std::string last;
  for (const auto& [k, v] : values_) {
    if (k.first != last) {
      out << "# TYPE ferry_" << k.first << (v.first ? " gauge\n" : " counter\n");
      last = k.first;
    }
    out << "ferry_" << k.first << "{instance=\"" << k.second << "\"} " << v.second << "\n";
  }
  return out.str();
}

std::shared_ptr<SharedScope> PluginServices::scope(const std::string& name) {
  std::lock_guard lock(scopes_mutex_);
  auto& s = scopes_[name];
  if (!s) s = std::make_shared<SharedScope>();
  return s;
}

}  // namespace ferry::core
