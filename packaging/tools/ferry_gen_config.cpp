// ferry_gen_config: writes the shipped configuration (/etc/ferry/ferry.ini, the MSI's
// ProgramData\Ferry\ferry.ini) from the plugins' own option tables, so that the file documents
// every option of every in-tree plugin exactly as `ferry plugins` declares it and cannot drift
// from the code ("options are data").
//
//   ferry_gen_config --out FILE --head FILE [--hints FILE] PLUGIN.so...
//
// --head   text copied first: the header comment and the platform's [host] section.
// --hints  lines `<plugin>.<option> = <value>`: the value suggested in the commented line instead
//          of the default (e.g. a CSV drop folder under the spool directory).
// Every plugin gets one section, disabled, with `plugin =` set and each option commented out:
// its type, default, whether it is required or secret, its help and choices; then the host
// settings every source or sink accepts that the plugin does not redeclare.
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "config/Config.h"
#include "loader/Loader.h"

namespace {

using ferry::core::optionTypeName;

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// Wraps `text` into comment lines of at most 100 columns, each starting with `prefix`.
void comment(std::ostream& out, const std::string& prefix, const std::string& text) {
  std::istringstream words(text);
  std::string word, line;
  for (; words >> word;) {
    if (!line.empty() && prefix.size() + line.size() + 1 + word.size() > 100) {
      out << prefix << line << "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
  }
  if (!line.empty()) out << prefix << line << "\n";
}

void option(std::ostream& out, const ferry::core::OptionSpec& o, const std::string& hint,
            bool host_setting) {
  std::string what = std::string(optionTypeName(o.type));
  if (o.required) what += ", required";
  if (o.secret) what += ", secret";
  if (!o.required && o.default_value && *o.default_value)
    what += ", default " + std::string(o.default_value);
  if (host_setting) what += ", host setting";
  std::string help = o.help ? o.help : "";
  if (o.choices) {
    std::string c = o.choices;
    std::replace(c.begin(), c.end(), '|', ' ');
    help += " (one of: " + c + ")";
  }
  comment(out, ";   ", std::string(o.name) + " (" + what + "): " + help);
  std::string value = !hint.empty() ? hint : (o.default_value && !o.required ? o.default_value : "");
  out << ";" << o.name << " =" << (value.empty() ? "" : " " + value) << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path, head_path, hints_path;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--out" || a == "--head" || a == "--hints") && i + 1 < argc) {
      (a == "--out" ? out_path : a == "--head" ? head_path : hints_path) = argv[++i];
    } else {
      files.push_back(a);
    }
  }
  if (out_path.empty() || head_path.empty()) {
    std::cerr << "usage: ferry_gen_config --out FILE --head FILE [--hints FILE] PLUGIN...\n";
    return 64;
  }
  try {
    std::map<std::string, std::string> hints;
    if (!hints_path.empty()) {
      std::ifstream in(hints_path);
      if (!in) throw std::runtime_error("cannot read " + hints_path);
      for (std::string line; std::getline(in, line);) {
        line = trim(line);
        if (line.empty() || line[0] == '#' || line[0] == ';') continue;
        const auto eq = line.find('=');
        if (eq == std::string::npos) throw std::runtime_error(hints_path + ": no '=' in " + line);
        hints[trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
      }
    }
    std::vector<std::shared_ptr<const ferry::core::Plugin>> plugins;
    for (const auto& f : files) plugins.push_back(ferry::core::loadPlugin(f));
    std::sort(plugins.begin(), plugins.end(), [](const auto& a, const auto& b) {
      return a->isSource() != b->isSource() ? a->isSource() : a->name() < b->name();
    });

    std::ofstream out(out_path, std::ios::binary);
    std::ifstream head(head_path, std::ios::binary);
    if (!head) throw std::runtime_error("cannot read " + head_path);
    out << head.rdbuf();

    std::set<std::string> used;
    for (const auto& p : plugins) {
      const std::string kind = p->isSource() ? "source" : "sink";
      std::string instance = p->name();
      if (instance.rfind(kind + "_", 0) == 0) instance = instance.substr(kind.size() + 1);
      std::replace(instance.begin(), instance.end(), '_', '-');
      if (!used.insert(instance).second) instance = p->name();
      used.insert(instance);

      out << "\n; " << std::string(98, '-') << "\n";
      comment(out, "; ", p->name() + " (" + kind + ", version " + p->descriptor->version +
                             "): " + (p->descriptor->description ? p->descriptor->description : ""));
      comment(out, "; ", "To use it: set enabled = true, set the required options (and any "
                         "other you need) by removing the ';' in front of them, run "
                         "`ferry check`, then restart the service. Copy the section under "
                         "another name for a second instance.");
      out << "[" << kind << "." << instance << "]\n";
      out << "plugin = " << p->name() << "\n";
      out << "enabled = false\n";
      std::set<std::string> declared;
      for (const auto& o : p->options) {
        declared.insert(o.name);
        auto h = hints.find(p->name() + "." + o.name);
        option(out, o, h == hints.end() ? "" : h->second, false);
      }
      const auto& host = p->isSource() ? ferry::core::hostSourceOptions()
                                       : ferry::core::hostSinkOptions();
      for (const auto& o : host) {
        if (declared.count(o.name)) continue;
        auto h = hints.find(p->name() + "." + o.name);
        option(out, o, h == hints.end() ? "" : h->second, true);
      }
    }
    if (!out.flush()) throw std::runtime_error("cannot write " + out_path);
  } catch (const std::exception& e) {
    std::cerr << "ferry_gen_config: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
