// A reader over a fuzzer's input: fixed-width fields taken from the front, zeros once it runs out,
// so every input (even empty) is a complete case and the seed files can be written field by field
// (scripts/fuzz_seeds.py writes them with the same layout).
#ifndef SIMAM_FUZZ_INPUT_H
#define SIMAM_FUZZ_INPUT_H

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace simam_fuzz {

class Input {
public:
    Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}

    template <typename T>
    T take() {
        T value{};
        const size_t n = sizeof(T) < remaining() ? sizeof(T) : remaining();
        if (n > 0) std::memcpy(&value, data_ + pos_, n);  // little endian, as the seeds are written
        pos_ += n;
        return value;
    }

    size_t remaining() const { return size_ - pos_; }
    const uint8_t* rest() const { return data_ + pos_; }

private:
    const uint8_t* data_;
    size_t size_;
    size_t pos_ = 0;
};

}  // namespace simam_fuzz

#endif  // SIMAM_FUZZ_INPUT_H
