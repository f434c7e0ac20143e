// Pictures of conductance maps, like the original project's figures: per image and layer a
// PNG strip of the input as the model saw it, then the maps of the channels with the
// largest conductance drawn over it.
#pragma once

#include <string>

#include "runtime/preprocess.h"

namespace veto {

// input: the preprocessed (C,H,W) sample (un-normalized with `pre` for display). map: one
// layer's (channels, map_h, map_w) conductance map; channel_values: its per-channel
// conductance. The `top` channels of largest value follow the input, each map upsampled
// (nearest) to the input size (inputs under 160 pixels are enlarged) and blended over a gray copy of it: red for positive, blue
// for negative, opacity by |value| / the map's largest |value|. Written atomically.
void write_conductance_png(const std::string& path, const float* input, const Preprocess& pre, const float* map,
                           int64_t channels, int64_t map_h, int64_t map_w, const float* channel_values, int top);

}  // namespace veto
