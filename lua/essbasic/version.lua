-- The release of essbasic, in one place: essbasic.VERSION, the X-TC-RequestClient header
-- (SDK_LUA_ESSBASIC_<version>), the versioned rockspec's file name and CHANGELOG.md's latest heading all say this
-- (spec/rockspec_spec.lua holds them together). Bump it here, rename the rockspec, add a CHANGELOG section.
return "0.3.0"
