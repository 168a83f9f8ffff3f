"""facemotion.render"""
