#include "bench/serve/progress.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <string>

namespace tpserve::bench {
namespace {

std::string Capture(const std::function<void(std::FILE*)>& fn) {
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  fn(f);
  std::fclose(f);
  std::string s(buf, len);
  free(buf);
  return s;
}

TEST(ProgressTest, Bar) {
  EXPECT_EQ(Progress::Bar(0, 10, 0),
            "  0%| " + std::string(29, ' ') + "| 0/10 [00:00<?, 0.00 req/s]");
  EXPECT_EQ(Progress::Bar(5, 10, 2.0),
            " 50%|###############" + std::string(15, ' ') + "| 5/10 [00:02<00:02, 2.50 req/s]");
  EXPECT_EQ(Progress::Bar(10, 10, 3725),
            "100%|" + std::string(30, '#') + "| 10/10 [1:02:05<00:00, 0.00 req/s]");
}

TEST(ProgressTest, LinesEveryIntervalWhenNotATerminal) {
  const std::string out = Capture([](std::FILE* f) {
    Progress p(Progress::Mode::kLines, 100, f, 10.0);
    p.Update(1, 0, 1.0);    // too early
    p.Update(20, 1, 10.5);  // first line
    p.Update(25, 1, 15.0);  // too soon after it
    p.Update(50, 2, 21.0);  // second line
    p.Finish(100, 2, 30.0);
  });
  EXPECT_EQ(out,
            "progress: 20/100 requests done (1 failed), 10.5 s, 1.90 req/s\n"
            "progress: 50/100 requests done (2 failed), 21.0 s, 2.38 req/s\n"
            "progress: 100/100 requests done (2 failed), 30.0 s\n");
}

TEST(ProgressTest, OffPrintsNothing) {
  EXPECT_EQ(Capture([](std::FILE* f) {
              Progress p(Progress::Mode::kOff, 3, f);
              p.Update(1, 0, 100);
              p.Finish(3, 0, 200);
            }),
            "");
}

}  // namespace
}  // namespace tpserve::bench
