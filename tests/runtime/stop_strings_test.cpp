#include "runtime/stop_strings.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace strata {
namespace {

// Feeds `pieces` and returns what was shown (finish() included unless a stop was found).
std::string feed(StopStrings& stops, const std::vector<std::string>& pieces) {
  std::string shown;
  for (const auto& p : pieces) shown += stops.push(p);
  if (!stops.found()) shown += stops.finish();
  return shown;
}

TEST(StopStrings, TextBeforeTheMatchIsShownAndTheRestDropped) {
  StopStrings stops({"END"});
  EXPECT_EQ(feed(stops, {"hello E", "N", "D and more"}), "hello ");
  EXPECT_TRUE(stops.found());
  EXPECT_EQ(stops.push("later"), "");
}

TEST(StopStrings, PartialMatchesAreHeldBackThenReleased) {
  StopStrings stops({"\n\nUser:"});
  EXPECT_EQ(stops.push("a\n"), "a");
  EXPECT_EQ(stops.push("\nUs"), "");
  EXPECT_EQ(stops.push("ed"), "\n\nUsed");  // not a stop string after all
  EXPECT_FALSE(stops.found());
  EXPECT_EQ(stops.push("\n"), "");
  EXPECT_EQ(stops.finish(), "\n");
}

TEST(StopStrings, EarliestOfSeveralWins) {
  StopStrings stops({"cd", "b"});
  EXPECT_EQ(feed(stops, {"abcd"}), "a");
  StopStrings overlapping({"xyz", "yz1"});
  EXPECT_EQ(feed(overlapping, {"0x", "y", "z1"}), "0");
}

TEST(StopStrings, NoneOrEmptyPassesThrough) {
  StopStrings none({});
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(feed(none, {"any", "thing"}), "anything");
  StopStrings empty({""});
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(feed(empty, {"x"}), "x");
}

}  // namespace
}  // namespace strata
