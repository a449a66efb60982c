"""Word lists and tables behind the synthetic data generator (UK-flavoured retail).

Kept as whitespace- or line-separated text blocks so the formatter leaves them compact; the
parsers at the bottom turn them into the tuples the generator uses.
"""

from __future__ import annotations

from dataclasses import dataclass


def words(text: str) -> tuple[str, ...]:
    """Whitespace-separated words of a text block."""
    return tuple(text.split())


FIRST_NAMES_F = """
Olivia Amelia Isla Ava Mia Grace Sophia Lily Freya Emily Ella Poppy Evie Charlotte Isabella
Sophie Jessica Alice Ruby Florence Daisy Matilda Chloe Lucy Phoebe Sienna Harriet Ellie Holly
Hannah Emma Sarah Laura Rebecca Rachel Natalie Katherine Catherine Elizabeth Victoria Samantha
Jennifer Nicola Helen Claire Joanne Louise Michelle Amanda Susan Margaret Patricia Deborah
Karen Julie Gemma Zara Aisha Fatima Priya Anjali Maryam Amira Yasmin Leah Megan Abigail Erin
Niamh Siobhán Aoife Zoë Maya Layla Nadia Agnieszka Magdalena Chiara Giulia Ana Mariana Renée
"""
FIRST_NAMES_M = """
Oliver George Harry Noah Jack Leo Arthur Muhammad Oscar Charlie Jacob Thomas Henry William
James Joshua Alfie Freddie Archie Theo Isaac Samuel Daniel Benjamin Alexander Matthew Joseph
Edward Christopher Michael Andrew David Richard Stephen Robert Jonathan John Peter Paul Mark
Simon Anthony Nicholas Gareth Ian Martin Graham Kevin Lee Adam Ryan Liam Connor Callum Jamie
Aaron Ethan Dylan Mohammed Ali Hamza Ibrahim Yusuf Arjun Rohan Vikram Tomasz Piotr Marco
Luca José Kwame Chinedu Rhys Owen Cameron Ewan Finlay Seán Declan Niall Patrick Zachary
"""
LAST_NAMES = """
Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson Thompson
Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson Wood Turner
Martin Cooper Hill Ward Morris Moore Clark Lee King Baker Harrison Morgan Allen James Scott
Phillips Watson Davis Parker Price Bennett Young Griffiths Mitchell Kelly Cook Carter
Richardson Bailey Collins Bell Shaw Murphy Miller Cox Richards Khan Marshall Anderson Simpson
Ellis Adams Singh Begum Wilkinson Foster Chapman Powell Webb Rogers Gray Mason Ali Hunt Hussain
Campbell Matthews Owen Palmer Holmes Mills Barnes Knight Lloyd Butler Russell Barker Fisher
Stevens Jenkins Murray Dixon Harvey Graham Pearson Ahmed Fletcher Walsh Kaur Gibson Howard
Andrews Stewart Elliott Reynolds Saunders Payne Fox Ford Pearce Day Brooks West Lawrence Cole
Atkinson Bradley Spencer Gill Dawson Ball Burton O'Brien Watts Rose Booth Perry Ryan Grant
Wells Armstrong Francis Rees Hayes Hart Hudson Newman Barrett Webster Hunter Gregory Carr Lowe
Page Marsh Riley Dunn Woods Parsons Berry Stone Reid Holland Hawkins Harding Porter Robertson
Newton Oliver Reed Kennedy Williamson Bird Gardner Shah Dean Lane Cooke Bates Henderson Parry
Burgess Bishop Walton Burns Nicholson Shepherd Ross Cross Long Freeman Warren Nicholls Hamilton
Byrne Sutton McDonald Yates Hodgson Robson Curtis Hopkins O'Connor Harper Coleman Watkins Moss
McCarthy Chambers O'Neill Griffin Sharp Hardy Wheeler Potter Osborne Johnston Gordon Doyle
Wallace George Jordan Hutchinson Rowe Burke Pritchard Gilbert Willis Higgins Miah Nowak
Kowalski Nguyen Chen Wang Okafor Adeyemi Mensah Rossi Silva Santos Costa Novak Macleod Fraser
"""

# Formal name -> short forms that people, tills and CRMs write for the same person.
NICKNAMES_TEXT = """
John=Jon,Johnny Jonathan=Jon,Jonny William=Will,Bill Robert=Rob,Bob Elizabeth=Liz,Beth
Katherine=Kate,Kathy Catherine=Cath,Kate Michael=Mike Christopher=Chris Daniel=Dan,Danny
Thomas=Tom,Tommy James=Jim,Jamie Alexander=Alex Samuel=Sam Matthew=Matt Joseph=Joe
Rebecca=Becky,Becca Jennifer=Jen,Jenny Margaret=Maggie,Peggy Victoria=Vicky,Tori
Nicholas=Nick Benjamin=Ben Edward=Ed,Eddie Richard=Rich,Richie Stephen=Steve Anthony=Tony
Andrew=Andy Samantha=Sam Jessica=Jess Abigail=Abbie Zachary=Zac Peter=Pete David=Dave
Susan=Sue Patricia=Pat,Trish Deborah=Debbie Charlotte=Lottie Isabella=Bella Alfie=Alf
Harriet=Hattie Nicola=Nicky Joanne=Jo Amanda=Mandy Gareth=Gaz Frederick=Fred Freddie=Fred
Mohammed=Mo Muhammad=Mo Oliver=Ollie Harry=Haz Callum=Cal Cameron=Cam Daisy=Dais
"""

# name | weight | postcode areas | landline: national area code | allowed next digits | rest length
CITIES_TEXT = """
London|30|E N SE SW W NW EC WC|20|3,7,8|7
Manchester|8|M|161|2,3,4,5,7,8,9|6
Birmingham|8|B|121|2,3,4,5,6,7|6
Leeds|5|LS|113|2|6
Glasgow|5|G|141|2,3,4,5,7,8,9|6
Edinburgh|4|EH|131|2,3,4,5,6,7,8|6
Bristol|4|BS|117|9|6
Liverpool|4|L|151|2,3,4,5,7,8,9|6
Sheffield|3|S|114|2|6
Newcastle upon Tyne|3|NE|191|2|6
Nottingham|3|NG|115|9|6
Cardiff|3|CF|29|20|6
Belfast|2|BT|28|90|6
Brighton|3|BN|1273|6|5
Oxford|2|OX|1865|2|5
Cambridge|2|CB|1223|3|5
York|2|YO|1904|6|5
"""

# Real UK mobile ranges that libphonenumber's GB metadata accepts in full (07xx + 7 digits).
MOBILE_PREFIXES = words(
    """
    740 741 742 743 744 746 747 748 749 751 753 754 755 756 757 758 759 771 772 773 774 775 776
    777 780 781 784 785 786 787 788 789 790 792 794 795 796 797 798 799
    """
)

STREETS = """
High|Station|Church|Victoria|Park|Green|Manor|Mill|Queen's|King's|Grange|Kingsway|Albert|
Windsor|Richmond|Chester|York|Elm|Oak|Beech|Ash|Willow|Cedar|Maple|Rowan|Hawthorn|Acacia|
Orchard|Meadow|Springfield|Highfield|Fairfield|Westfield|Mount Pleasant|Church Hill|Alexandra|
Cromwell|Nelson|Wellington|Clarence|Cambridge|Stanley|Palmerston|Marlborough|Lansdowne|
Belmont|Grosvenor|Hamilton|Priory|Abbey|Bridge|Castle|Market|Union|North|South|East|West|
Riverside|Canal|Brook|Lime|Holly|Laurel|Hazel|Chestnut|Sycamore|Poplar|Linden|Heath|Moor
"""
# Street type -> the abbreviation a CRM or courier label might use instead.
STREET_TYPES = (
    ("Road", "Rd"),
    ("Street", "St"),
    ("Avenue", "Ave"),
    ("Lane", "Ln"),
    ("Close", "Cl"),
    ("Drive", "Dr"),
    ("Gardens", "Gdns"),
    ("Crescent", "Cres"),
    ("Way", "Way"),
    ("Place", "Pl"),
    ("Grove", "Gr"),
    ("Terrace", "Terr"),
)

# (domain, weight); shares roughly as UK consumers use them.
EMAIL_DOMAINS = (
    ("gmail.com", 34),
    ("hotmail.co.uk", 12),
    ("outlook.com", 9),
    ("icloud.com", 10),
    ("yahoo.co.uk", 7),
    ("btinternet.com", 5),
    ("live.co.uk", 4),
    ("hotmail.com", 4),
    ("sky.com", 3),
    ("aol.com", 2),
    ("googlemail.com", 2),
    ("virginmedia.com", 2),
)
# The typos people really make in those domains (seen on checkout forms).
DOMAIN_TYPOS = {
    "gmail.com": ("gmial.com", "gmail.co", "gmai.com", "gmail.con", "gnail.com"),
    "hotmail.co.uk": ("hotmial.co.uk", "hotmail.co", "hotmal.co.uk", "hotmail.com"),
    "outlook.com": ("outlok.com", "outlook.co", "outllook.com"),
    "icloud.com": ("iclod.com", "icloud.co", "icould.com"),
    "yahoo.co.uk": ("yaho.co.uk", "yahoo.co", "yahooo.co.uk"),
}
COMPANIES = """
acme-logistics northwind brightwater-health greenleaf-legal harbourside-media kestrel-eng
oakridge-consulting bluefin-digital redbrick-homes stonebridge-finance parkview-nhs
"""

# WhatsApp inbound message templates; {order}, {product}, {city}, {store} are filled in.
WA_ORDER = (
    "Hi, any update on my order {order}?",
    "Hello! My order {order} hasn't arrived yet, can you check?",
    "Can I change the delivery address for {order}?",
    "Order {order} arrived, thank you!",
    "Hi there, I think an item is missing from {order}",
    "hi is it possible to cancel {order}",
)
WA_PRODUCT = (
    "Do you have {product} in stock?",
    "Hi, is the {product} back in stock soon?",
    "What's the difference between the sizes of {product}?",
    "Is {product} suitable as a gift? Do you gift wrap?",
    "Hi! Can I reserve {product} to collect in store?",
)
WA_GENERAL = (
    "Do you deliver to {city}?",
    "What time does the {store} shop close today?",
    "Hi, do you have any discount codes at the moment?",
    "How do I use my loyalty points?",
    "Thanks so much!",
    "ok great",
    "Hello?",
)


@dataclass(frozen=True, slots=True)
class CategorySpec:
    name: str
    code: str
    price_lo: float
    price_hi: float
    repeat_days: int
    weight: float
    complements: tuple[str, ...]
    bases: tuple[str, ...]
    variants: tuple[tuple[str, float], ...]
    searches: tuple[str, ...]


# name | code | price range | repeat every N days (0: not a consumable) | popularity | complements,
# then base names (`@price` pins a price), `=variant:price multiplier` and `?search terms`.
CATEGORY_TABLE = """
Coffee|COF|6.5-11|28|14|Kitchen,Chocolate,Snacks
 Ethiopia Yirgacheffe;Colombia Huila;Brazil Cerrado;Guatemala Antigua;Kenya AA;House Espresso
 Sumatra Mandheling;Morning Blend;Decaf Swiss Water;Costa Rica Tarrazu;Rwanda Nyamasheke
 Peru Organic;Dark Roast No.5;Breakfast Blend
 =Whole Bean 250g:1;Ground 250g:1;Whole Bean 1kg:3.3;Pods x10:0.6
 ?coffee;espresso;decaf;coffee beans;ground coffee;pods;ethiopia
Tea|TEA|4.5-9|35|10|Kitchen,Chocolate,Snacks
 English Breakfast;Earl Grey;Darjeeling First Flush;Assam Gold;Sencha;Jasmine Pearls
 Chamomile;Peppermint;Rooibos;Chai Spice;Lapsang Souchong;Matcha Ceremonial
 =Loose Leaf 100g:1;Pyramid Bags x15:0.85;Loose Leaf 250g:2.2
 ?tea;earl grey;green tea;herbal tea;matcha;chai;tea bags
Chocolate|CHO|3-6|21|7|Coffee,Tea,Gifts
 Sea Salt Caramel;70% Dark;Milk Hazelnut;Orange Dark;Raspberry White;Mint Crisp
 Chilli Dark;Salted Almond;Oat Milk Vegan
 =Bar 100g:1;Gift Box 200g:3;Buttons 150g:1.2
 ?chocolate;dark chocolate;vegan chocolate;chocolate gift;salted caramel
Snacks|SNK|1.8-4|14|5|Coffee,Tea,Chocolate
 Sea Salt Crisps;Chilli Cashews;Honey Almonds;Oat Biscuits;Shortbread;Granola Clusters
 Dark Choc Flapjack;Stem Ginger Cookies;Cheddar Straws
 =Single:1;Multipack x6:4.5
 ?snacks;biscuits;nuts;granola;cookies
Skincare|SKN|12-38|45|12|Bath & Body,Haircare,Fragrance
 Hydrating Serum;Vitamin C Serum;Daily Moisturiser;Night Cream;Gentle Cleanser;Eye Cream
 Exfoliating Toner;SPF 50 Fluid;Retinol Serum;Clay Mask;Lip Balm
 =30ml:1;50ml:1.5;Refill:0.8
 ?serum;moisturiser;vitamin c;spf;retinol;cleanser;skincare
Haircare|HAI|9-22|40|6|Skincare,Bath & Body
 Repair Shampoo;Volume Shampoo;Moisture Conditioner;Scalp Scrub;Hair Oil;Leave-in Spray
 Curl Cream;Dry Shampoo
 =250ml:1;500ml:1.7;Refill 1L:2.6
 ?shampoo;conditioner;hair oil;curl;dry shampoo
Bath & Body|BTH|7-20|40|8|Skincare,Candles,Fragrance
 Body Wash;Hand Wash;Body Lotion;Bath Salts;Body Scrub;Hand Cream;Shower Oil;Bath Bomb Set
 =Lavender:1;Fig & Cedar:1.05;Neroli:1.1;Oud:1.25
 ?hand wash;body lotion;bath;hand cream;lavender
Fragrance|FRA|45-85|0|4|Candles,Skincare,Gifts
 Amber Woods;Wild Fig;White Tea;Sea Salt;Rose Noir;Cedar & Vetiver;Bergamot;Oud Nights
 =EDP 50ml:1;EDP 100ml:1.6;Discovery Set:0.45
 ?perfume;fragrance;eau de parfum;discovery set;oud
Candles|CAN|18-32|0|7|Homeware,Fragrance,Gifts
 Amber Woods;Wild Fig;Fireside;Pine Forest;Mulled Wine;Fresh Linen;Tomato Leaf;Sea Salt
 Rose Noir;Bergamot;Cedar & Vetiver;White Tea;Oud Nights
 =Candle 200g:1;Candle 3-Wick:1.9;Votive:0.35;Diffuser 100ml:1.2
 ?candle;scented candle;diffuser;christmas candle;fig candle
Homeware|HOM|12-85|0|5|Candles,Kitchen
 Linen Napkins x4;Stoneware Bowl;Ceramic Vase;Wool Throw;Cushion Cover;Marble Coaster Set
 Glass Carafe;Oak Serving Board;Rattan Basket;Table Lamp
 =Natural:1;Charcoal:1;Sage:1.05
 ?vase;throw;cushion;bowl;lamp;homeware
Kitchen|KIT|4-95|0|6|Coffee,Tea,Homeware
 Ceramic Pour-Over Dripper@18;Paper Filters x100@4.5;Burr Grinder@89;Cafetiere 8-Cup@32
 Milk Frother@24;Glass Teapot@26;Tea Infuser@8.5;Enamel Mug@12;Stoneware Mug@14
 Cold Brew Bottle@22;Digital Scale@29;Gooseneck Kettle@65
 =:1
 ?grinder;cafetiere;mug;kettle;filters;teapot;frother
Stationery|STA|3-28|0|4|Gifts,Candles
 A5 Dotted Notebook;A5 Lined Notebook;Weekly Planner;Fountain Pen;Ink Cartridges x6
 Greetings Card;Gift Wrap Roll;Washi Tape Set;Desk Calendar
 =Black:1;Forest Green:1;Terracotta:1
 ?notebook;planner;pen;card;gift wrap
Gifts|GIF|20-75|0|5|Stationery,Chocolate,Candles
 Coffee Lover Hamper@55;Tea Time Hamper@45;Pamper Gift Set@48;Chocolate Tasting Box@28
 Candle Trio Gift Set@42;Letterbox Treat@22;Gift Card 25@25;Gift Card 50@50;Advent Calendar@39
 =:1
 ?gift;hamper;gift set;gift card;advent calendar;present for her;present for him
Supplements|SUP|8-24|30|4|Skincare,Tea
 Vitamin D3;Magnesium Glycinate;Omega-3;Collagen Powder;Probiotic;Multivitamin;Ashwagandha
 Iron + C
 =30 Caps:1;90 Caps:2.4
 ?vitamin d;magnesium;collagen;omega 3;probiotic
Pet Care|PET|5-15|30|3|Cleaning
 Dog Shampoo;Paw Balm;Training Treats;Dental Chews;Cat Treats;Grain-Free Biscuits
 =Small:1;Large:1.7
 ?dog;cat;treats;pet shampoo
Cleaning|CLN|3-12|30|3|Homeware,Bath & Body
 Washing Up Liquid;Surface Spray;Laundry Liquid;Glass Cleaner;Bamboo Cloths x3
 Dishwasher Tabs x30
 =500ml:1;Refill 2L:2.6
 ?washing up;refill;laundry;cleaning spray;eco cleaning
"""

# Pairs bought together far more often than chance: (title fragment, title fragment).
BUNDLES = (
    ("Pour-Over Dripper", "Paper Filters"),
    ("Fountain Pen", "Ink Cartridges"),
    ("Cafetiere", "Ground 250g"),
    ("Glass Teapot", "Loose Leaf 100g"),
    ("Tea Infuser", "Loose Leaf"),
    ("Burr Grinder", "Whole Bean"),
    ("Shampoo", "Conditioner"),
    ("Gift Wrap Roll", "Greetings Card"),
)
# Categories whose demand jumps in the gift season (November, December).
GIFT_SEASON_BOOST = {"Gifts": 4.0, "Candles": 2.0, "Chocolate": 1.6, "Fragrance": 1.8}


def nicknames() -> dict[str, tuple[str, ...]]:
    """Formal first name -> the short forms used for it."""
    out: dict[str, tuple[str, ...]] = {}
    for pair in NICKNAMES_TEXT.split():
        formal, shorts = pair.split("=")
        out[formal] = tuple(shorts.split(","))
    return out


@dataclass(frozen=True, slots=True)
class CitySpec:
    name: str
    weight: float
    areas: tuple[str, ...]
    area_code: str
    next_digits: tuple[str, ...]
    rest_len: int


def cities() -> tuple[CitySpec, ...]:
    """The cities customers live in, with postcode areas and a valid landline pattern."""
    out = []
    for line in CITIES_TEXT.strip().splitlines():
        name, weight, areas, code, nxt, rest = line.split("|")
        out.append(
            CitySpec(
                name, float(weight), tuple(areas.split()), code, tuple(nxt.split(",")), int(rest)
            )
        )
    return tuple(out)


def streets() -> tuple[str, ...]:
    """Street names without their type (Road, Lane...)."""
    return tuple(s.strip() for s in STREETS.replace("\n", "").split("|") if s.strip())


def categories() -> tuple[CategorySpec, ...]:
    """Parse CATEGORY_TABLE: a header line, base-name lines, `=variants`, `?searches`."""
    specs: list[CategorySpec] = []
    block: list[str] = []

    def flush() -> None:
        if not block:
            return
        name, code, prices, repeat, weight, comps = block[0].split("|")
        lo, hi = (float(x) for x in prices.split("-"))
        bases: list[str] = []
        variants: tuple[tuple[str, float], ...] = ()
        searches: tuple[str, ...] = ()
        for line in block[1:]:
            if line.startswith("="):
                pairs = (v.rsplit(":", 1) for v in line[1:].split(";"))
                variants = tuple((label, float(mult)) for label, mult in pairs)
            elif line.startswith("?"):
                searches = tuple(line[1:].split(";"))
            else:
                bases.extend(line.split(";"))
        specs.append(
            CategorySpec(
                name,
                code,
                lo,
                hi,
                int(repeat),
                float(weight),
                tuple(comps.split(",")),
                tuple(bases),
                variants,
                searches,
            )
        )
        block.clear()

    for raw in CATEGORY_TABLE.strip("\n").splitlines():
        if not raw.startswith(" "):
            flush()
            block.append(raw.strip())
        else:
            block.append(raw.strip())
    flush()
    return tuple(specs)
