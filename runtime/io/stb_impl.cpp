// The one translation unit that compiles stb_image and stb_image_write.
//
// Decoding is limited to the formats image datasets use (PNG, JPEG, BMP). This shrinks
// the attack surface of a decoder that reads untrusted files: stb_image's GIF loader has
// open memory-safety reports, and TGA's weak signature check "decodes" arbitrary bytes
// instead of reporting a corrupt file. (Debian's stb_image 2.27 also overflows on JPEG
// Huffman tables with > 256 symbols and decodes with undefined ones; decode_image() screens
// for both before calling it.)
#include <cstdlib>
#include <cstring>

namespace {
// stb_image 2.27 copies a PNG's first IDAT chunk with memcpy(idata, ..., 0) while idata is
// still NULL when that chunk is empty (valid PNG; Pillow reads it). memcpy's pointers must be
// valid even for 0 bytes, so that is undefined behaviour (UBSan: nonnull-attribute), and a
// compiler may drop stb's later `idata == NULL` check. Its memcpy calls go through this.
void* stbi_memcpy(void* to, const void* from, size_t n) { return n == 0 ? to : std::memcpy(to, from, n); }
}  // namespace

// stb_image 2.27 mallocs its decoder state (the JPEG struct with its Huffman tables)
// without clearing it; zeroed memory makes any field it forgets to set read as 0, not as
// whatever the heap held (the undefined-table reads above were found that way).
#define STBI_MALLOC(size) std::calloc(1, size)
#define STBI_REALLOC(pointer, size) std::realloc(pointer, size)
#define STBI_FREE(pointer) std::free(pointer)
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STB_IMAGE_IMPLEMENTATION
#define memcpy stbi_memcpy
#include <stb_image.h>
#undef memcpy

// Writing is used by tests and tools to produce PNG/JPEG fixtures.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
