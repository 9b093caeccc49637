/* placeholder so the module links while this part is being written */
#include "core.h"
void essbasic_open_http(lua_State *L) { (void)L; }
