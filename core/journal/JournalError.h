// The one error every part of the journal throws.
#pragma once

#include <stdexcept>

namespace ferry::core {

// A storage failure (disk full, I/O error, locked, refused row). Every method of every journal
// part may throw it; callers on the event path treat it as transient, so nothing of the failed
// call may have been stored.
class JournalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace ferry::core
