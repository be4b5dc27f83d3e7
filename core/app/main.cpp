#include <Poco/Exception.h>

#include <iostream>

#include "app/App.h"

#ifdef _WIN32
#include <cstring>
#include <string>
#include <vector>

// Windows: Poco's ServerApplication decides whether the service manager started ferry (then it
// runs `run` as the service) and carries out --registerService and --unregisterService (also
// spelled /registerService, /unregisterService as Windows services usually are).
int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  std::vector<char*> pointers;
  for (auto& a : args) {
    if (a == "/registerService" || a == "/unregisterService") a = "--" + a.substr(1);
    pointers.push_back(a.data());
  }
  ferry::core::App app;
  return app.run(argc, pointers.data());
}
#else
int main(int argc, char** argv) {
  ferry::core::App app;
  try {
    app.init(argc, argv);
  } catch (const Poco::Exception& e) {
    std::cerr << "ferry: " << e.displayText() << "; see ferry --help\n";
    return Poco::Util::Application::EXIT_USAGE;
  }
  return app.run();
}
#endif
