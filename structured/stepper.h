// Running a compiled grammar over bytes: a hash-consed stack arena, thread
// sets (one thread per live parse: a node plus its return stack) and the
// byte step with its closure through calls and returns.
#ifndef TPSERVE_STRUCTURED_STEPPER_H_
#define TPSERVE_STRUCTURED_STEPPER_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "structured/grammar.h"

namespace tpserve::structured {

// Return stacks as a tree of frames; equal stacks get equal ids, so threads
// compare by value in O(1).
class StackArena {
 public:
  static constexpr int32_t kBottom = -1;
  struct Frame {
    int32_t parent;
    NodeId ret;
  };
  // The id of the stack `parent` with `ret` pushed.
  int32_t Push(int32_t parent, NodeId ret);
  const Frame& frame(int32_t id) const { return frames_[id]; }
  size_t size() const { return frames_.size(); }

 private:
  std::vector<Frame> frames_;
  absl::flat_hash_map<uint64_t, int32_t> index_;
};

struct Thread {
  NodeId node;
  int32_t stack;
  bool operator==(const Thread& o) const { return node == o.node && stack == o.stack; }
};

// The parses alive after some input. Every thread sits at a node with byte
// edges; `bottom` says a parse ended the outermost rule exactly here (for the
// root rule: the grammar is complete).
struct ThreadSet {
  std::vector<Thread> threads;
  bool bottom = false;
  bool dead() const { return threads.empty() && !bottom; }
};

class Stepper {
 public:
  Stepper(const Grammar& grammar, StackArena* arena) : g_(grammar), arena_(arena) {}

  // Expands `seeds` through calls and rule ends into `out`.
  void Close(const std::vector<Thread>& seeds, ThreadSet* out);
  // `out` = the parses of `in` that accept byte `b`, closed.
  void Step(const ThreadSet& in, uint8_t b, ThreadSet* out);

 private:
  bool Visit(Thread t);

  const Grammar& g_;
  StackArena* arena_;
  std::vector<Thread> seeds_;
  std::vector<Thread> work_;
  std::vector<Thread> visited_;  // linear while small
  absl::flat_hash_set<uint64_t> visited_big_;
};

}  // namespace tpserve::structured

#endif  // TPSERVE_STRUCTURED_STEPPER_H_
