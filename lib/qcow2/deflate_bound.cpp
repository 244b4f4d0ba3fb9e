#include "deflate_bound.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

namespace vmstor::qcow2 {

namespace {

constexpr std::size_t max_input = 64 * 1024;
constexpr std::size_t block_symbols = 32767; // zlib ends a block when lit_bufsize - 1 symbols are buffered
constexpr std::size_t max_distance = 4096;   // the window: no match reaches further back
constexpr std::size_t min_match = 3;
constexpr std::size_t grain = 256; // block ends are tried at this grain
constexpr std::size_t max_cells = max_input / grain;
constexpr unsigned hash_bits = 14;
constexpr unsigned max_chain = 64; // a longer chain counts as a repeat: a lower bound, never a wrong one

// n·log2(n) for every count a cluster can reach (float: the sums over 256 values stay within a few bits).
const std::vector<float>& n_log_n() {
    static const std::vector<float> table = [] {
        std::vector<float> t(max_input + 1);
        for (std::size_t n = 2; n <= max_input; ++n)
            t[n] = static_cast<float>(static_cast<double>(n) * std::log2(static_cast<double>(n)));
        return t;
    }();
    return table;
}

using Histogram = std::array<std::uint32_t, 256>;

// The fewest bits any prefix code can spend on literals counted in `h` (C·log2(C) - Σ c·log2(c), by
// Kraft's inequality), `total` of them.
double literal_bits(const Histogram& h, std::size_t total, const std::vector<float>& table) {
    std::array<double, 4> sums{}; // four chains of additions instead of one long one
    for (std::size_t i = 0; i < h.size(); i += sums.size())
        for (std::size_t j = 0; j < sums.size(); ++j)
            sums[j] += table[h[i + j]];
    const double n = static_cast<double>(total);
    return (total > 1 ? n * std::log2(n) : 0.0) - (sums[0] + sums[1] + sums[2] + sums[3]);
}

struct Scratch {
    std::vector<std::uint32_t> head = std::vector<std::uint32_t>(std::size_t{1} << hash_bits); // position + 1
    std::array<std::uint32_t, max_distance> prev{};          // the previous position of the same hash, + 1
    std::array<std::uint64_t, max_input / 64> literal_map{}; // positions no match can cover
    std::array<double, max_cells + 1> prefix{}; // literal bits in [0, k·grain) (k = cells: [0, n))
    std::array<double, max_cells + 1> suffix{}; // literal bits in [k·grain, end of the second block)
};

// Whether the 3 bytes at `p` occurred within the window before it; inserts `p` into the chains.
bool repeats_earlier(const std::uint8_t* data, std::size_t p, Scratch& s) {
    const std::uint32_t key = data[p] | (data[p + 1] << 8) | (data[p + 2] << 16);
    const std::uint32_t hash = (key * 2654435761u) >> (32 - hash_bits);
    bool repeat = false;
    unsigned steps = 0;
    for (std::uint32_t t = s.head[hash]; t != 0 && p - (t - 1) <= max_distance;
         t = s.prev[(t - 1) % max_distance]) {
        const std::size_t q = t - 1;
        if (++steps > max_chain ||
            (data[q] == data[p] && data[q + 1] == data[p + 1] && data[q + 2] == data[p + 2])) {
            repeat = true;
            break;
        }
    }
    s.prev[p % max_distance] = s.head[hash];
    s.head[hash] = static_cast<std::uint32_t>(p + 1);
    return repeat;
}

} // namespace

bool deflate_cannot_shrink(std::span<const std::byte> in, std::size_t limit) {
    const std::size_t n = in.size();
    if (n > max_input || n < limit || n < min_match)
        return false;
    const auto* data = reinterpret_cast<const std::uint8_t*>(in.data());
    const std::vector<float>& table = n_log_n();
    thread_local Scratch s;
    std::fill(s.head.begin(), s.head.end(), 0);
    const std::size_t cells = (n + grain - 1) / grain;
    // Block ends are tried in the cells that end past 32767 bytes; only their bounds are computed.
    const std::size_t first_cell = block_symbols / grain;

    // Forward: which bytes must be literals (no 3-byte repeat within the window starts at them or up to
    // two bytes before), and the literal bits of the prefixes that end at the grid.
    const std::size_t max_repeats = n - limit; // more, and the bound cannot reach the limit
    std::size_t repeats = 0;
    std::size_t covered_until = 0;
    Histogram counts{};
    std::size_t literals = 0;
    for (std::size_t word = 0; word * 64 < n; ++word) {
        std::uint64_t map = 0;
        for (std::size_t p = word * 64; p < std::min(n, word * 64 + 64); ++p) {
            if (p % grain == 0 && p / grain >= first_cell)
                s.prefix[p / grain] = literal_bits(counts, literals, table);
            if (p + min_match <= n && repeats_earlier(data, p, s)) {
                if (++repeats > max_repeats)
                    return false;
                covered_until = p + min_match;
            }
            if (p >= covered_until) {
                map |= std::uint64_t{1} << (p % 64);
                ++counts[data[p]];
                ++literals;
            }
        }
        s.literal_map[word] = map;
    }
    s.prefix[cells] = literal_bits(counts, literals, table);

    // Backward: literal bits from each grid point to where a second block must have ended (a third
    // block, if any, starts at 2 · 32767 or later and is left out).
    const std::size_t second_end = std::min(n, 2 * block_symbols);
    std::fill(s.suffix.begin(), s.suffix.end(), 0.0);
    counts = {};
    literals = 0;
    for (std::size_t p = second_end; p-- > 0;) {
        if ((s.literal_map[p / 64] >> (p % 64)) & 1) {
            ++counts[data[p]];
            ++literals;
        }
        if (p % grain == 0 && p / grain > first_cell)
            s.suffix[p / grain] = literal_bits(counts, literals, table);
        if (p / grain <= first_cell)
            break;
    }

    // The least the output can be: one block, or the first one ending anywhere at 32767 or later.
    double least = s.prefix[cells];
    for (std::size_t k = first_cell; k < cells; ++k) {
        const std::size_t cell_end = std::min(n, (k + 1) * grain);
        if (cell_end <= block_symbols)
            continue;
        const double rest = cell_end < second_end ? s.suffix[k + 1] : 0.0;
        least = std::min(least, s.prefix[k] + rest);
    }
    constexpr double rounding_margin = 64; // bits: float table entries summed over 256 values
    return least >= 8.0 * static_cast<double>(limit) + rounding_margin;
}

} // namespace vmstor::qcow2
