#pragma once

#include "core/json.hpp"
#include "device/board/sim_board.hpp"

// The admin socket's board commands (wire/admin.hpp, "board-..."): what `aspis dev board` does
// to the virtual board and shows of it.
namespace aspis::device {

bool IsBoardCommand(const json::Json& request);
// `sim` null: the board is not the virtual one, and every command answers an error.
json::Json HandleBoardCommand(board::SimBoard* sim, const json::Json& request);

}  // namespace aspis::device
