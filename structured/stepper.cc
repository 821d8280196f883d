#include "structured/stepper.h"

namespace tpserve::structured {
namespace {

uint64_t Key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

constexpr size_t kLinearVisited = 24;

}  // namespace

int32_t StackArena::Push(int32_t parent, NodeId ret) {
  auto [it, inserted] = index_.try_emplace(Key(parent, ret), static_cast<int32_t>(frames_.size()));
  if (inserted) frames_.push_back({parent, ret});
  return it->second;
}


bool Stepper::Visit(Thread t) {
  if (visited_.size() < kLinearVisited) {
    for (const Thread& v : visited_) {
      if (v == t) return false;
    }
    visited_.push_back(t);
    if (visited_.size() == kLinearVisited) {
      for (const Thread& v : visited_) visited_big_.insert(Key(v.node, v.stack));
    }
    return true;
  }
  return visited_big_.insert(Key(t.node, t.stack)).second;
}

void Stepper::Close(const std::vector<Thread>& seeds, ThreadSet* out) {
  out->threads.clear();
  out->bottom = false;
  visited_.clear();
  if (!visited_big_.empty()) visited_big_.clear();
  work_.assign(seeds.rbegin(), seeds.rend());
  while (!work_.empty()) {
    const Thread t = work_.back();
    work_.pop_back();
    if (!Visit(t)) continue;
    const Grammar::Node& node = g_.node(t.node);
    if (node.edges_begin < node.edges_end) out->threads.push_back(t);
    if (node.final) {
      if (t.stack == StackArena::kBottom) {
        out->bottom = true;
      } else {
        const StackArena::Frame& f = arena_->frame(t.stack);
        work_.push_back({f.ret, f.parent});
      }
    }
    for (const auto* c = g_.calls_begin(t.node); c != g_.calls_end(t.node); ++c) {
      work_.push_back({g_.rule_start(c->rule), arena_->Push(t.stack, c->ret)});
    }
  }
}

void Stepper::Step(const ThreadSet& in, uint8_t b, ThreadSet* out) {
  // One parse moving to a node that neither calls nor ends needs no closure
  // (the common case inside strings and literals).
  if (in.threads.size() == 1) {
    const Thread t = in.threads[0];
    const NodeId next = g_.Next(t.node, b);
    if (next < 0) {
      out->threads.clear();
      out->bottom = false;
      return;
    }
    const Grammar::Node& node = g_.node(next);
    if (!node.final && node.calls_begin == node.calls_end) {
      out->threads.assign(1, Thread{next, t.stack});
      out->bottom = false;
      return;
    }
  }
  seeds_.clear();
  for (const Thread& t : in.threads) {
    const NodeId next = g_.Next(t.node, b);
    if (next >= 0) seeds_.push_back({next, t.stack});
  }
  if (seeds_.empty()) {
    out->threads.clear();
    out->bottom = false;
    return;
  }
  Close(seeds_, out);
}

}  // namespace tpserve::structured
