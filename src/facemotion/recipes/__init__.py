"""facemotion.recipes"""
