#include <Poco/Exception.h>

#include <iostream>

#include "app/App.h"

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
