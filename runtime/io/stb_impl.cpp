// The one translation unit that compiles stb_image and stb_image_write.
//
// Decoding is limited to the formats image datasets use (PNG, JPEG, BMP). This shrinks
// the attack surface of a decoder that reads untrusted files: stb_image's GIF loader has
// open memory-safety reports, and TGA's weak signature check "decodes" arbitrary bytes
// instead of reporting a corrupt file. (Debian's stb_image 2.27 also overflows on JPEG
// Huffman tables with > 256 symbols; decode_image() screens for that before calling it.)
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>

// Writing is used by tests and tools to produce PNG/JPEG fixtures.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
