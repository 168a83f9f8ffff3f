"""facemotion.models"""
